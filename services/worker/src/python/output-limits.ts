// Re-checks, in bytes, every cap on what a Python run hands back. The runner enforces the caps
// first, but it runs in the same interpreter as the user's code, which can tamper with it, so the
// thread, the sandbox host and the worker each check the report again as it crosses into them. A
// report that breaks a cap is replaced by an output-limit failure and is never stored or sent.
import type { PythonResult } from '@neuroagent/contracts';
import type { Artifact, ArtifactLimits } from './protocol.ts';
import { failure } from './result-mapping.ts';

export interface OutputLimits {
  /** Cap on stdout and on stderr, each (TASKS_PYTHON__MAX_OUTPUT_KB). */
  maxOutputBytes: number;
  /** Cap on the JSON of the return value (TASKS_PYTHON__MAX_RETURN_KB). */
  maxReturnBytes: number;
  artifacts: ArtifactLimits;
}

/** Room for the one marker line that OutputCapture appends when it drops lines. */
export const OUTPUT_MARKER_BYTES = 256;
/** The runner clips error messages and tracebacks to 64 Ki characters, plus a short suffix. */
export const MAX_ERROR_TEXT_CHARS = 64 * 1024 + 64;
/** POSIX PATH_MAX: an /output path longer than this is no honest file name. */
export const MAX_ARTIFACT_NAME_BYTES = 4096;
/** RFC 6838 allows 127 characters for each of type and subtype. */
export const MAX_CONTENT_TYPE_BYTES = 255;
const ARTIFACT_KINDS: ReadonlySet<string> = new Set(['plotly', 'matplotlib', 'file']);

/** C0 and C1 controls and DEL: never part of a sound file name or content type. */
export function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/** What crosses a boundary: the run's streams, its value or error, and its artifacts. */
export interface RunOutput {
  output: string[];
  stderr: string[];
  /** The return value, already parsed; absent when the run failed. */
  value?: unknown;
  error?: unknown;
  artifacts: Artifact[];
}

function streamBreach(name: string, lines: unknown, maxBytes: number): string | null {
  if (!Array.isArray(lines)) return `${name} is not a list of lines`;
  let bytes = 0;
  for (const line of lines) {
    if (typeof line !== 'string') return `${name} holds a line that is not text`;
    bytes += Buffer.byteLength(line, 'utf8') + 1;
  }
  const cap = maxBytes + OUTPUT_MARKER_BYTES;
  return bytes > cap ? `${name} is ${bytes} bytes, over the ${maxBytes}-byte limit` : null;
}

function valueBreach(value: unknown, maxBytes: number): string | null {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return 'the return value cannot be measured as JSON';
  }
  // Compact JSON is never longer than the runner's (which adds spaces and escapes non-ASCII).
  const bytes = Buffer.byteLength(json ?? 'null', 'utf8');
  return bytes > maxBytes ? `return value is ${bytes} bytes of JSON, over the ${maxBytes}-byte limit` : null;
}

function errorBreach(error: unknown): string | null {
  if (error === undefined || error === null) return null;
  const texts =
    typeof error === 'string'
      ? [error]
      : typeof error === 'object'
        ? Object.values(error as Record<string, unknown>)
        : [String(error)];
  for (const text of texts) {
    if (typeof text === 'string' && text.length > MAX_ERROR_TEXT_CHARS) {
      return `an error text is ${text.length} characters, over the ${MAX_ERROR_TEXT_CHARS}-character limit`;
    }
  }
  return null;
}

function artifactBreach(artifacts: unknown, limits: ArtifactLimits): string | null {
  if (!Array.isArray(artifacts)) return 'the artifacts are not a list';
  if (artifacts.length > limits.maxFiles) {
    return `${artifacts.length} artifacts, over the limit of ${limits.maxFiles}`;
  }
  let total = 0;
  for (const a of artifacts as Partial<Artifact>[]) {
    if (!(a.data instanceof Uint8Array)) return 'an artifact has no bytes';
    if (typeof a.kind !== 'string' || !ARTIFACT_KINDS.has(a.kind)) return 'an artifact has an unknown kind';
    if (typeof a.name !== 'string' || a.name === '') return 'an artifact has no name';
    if (typeof a.contentType !== 'string' || a.contentType === '') return 'an artifact has no content type';
    if (hasControl(a.name)) return 'an artifact file name has control characters';
    if (hasControl(a.contentType)) return 'an artifact content type has control characters';
    if (Buffer.byteLength(a.name, 'utf8') > MAX_ARTIFACT_NAME_BYTES) {
      return `an artifact file name is over ${MAX_ARTIFACT_NAME_BYTES} bytes`;
    }
    if (Buffer.byteLength(a.contentType, 'utf8') > MAX_CONTENT_TYPE_BYTES) {
      return `an artifact content type is over ${MAX_CONTENT_TYPE_BYTES} bytes`;
    }
    if (a.data.byteLength > limits.maxFileBytes) {
      return `an artifact is ${a.data.byteLength} bytes, over the ${limits.maxFileBytes}-byte limit`;
    }
    total += a.data.byteLength;
  }
  if (total > limits.maxTotalBytes) {
    return `the artifacts are ${total} bytes in all, over the ${limits.maxTotalBytes}-byte total`;
  }
  return null;
}

/** The first cap the output breaks, as a message for the output-limit failure; null if none. */
export function findOutputBreach(out: RunOutput, limits: OutputLimits): string | null {
  return (
    streamBreach('stdout', out.output, limits.maxOutputBytes) ??
    streamBreach('stderr', out.stderr, limits.maxOutputBytes) ??
    ('value' in out ? valueBreach(out.value, limits.maxReturnBytes) : null) ??
    errorBreach(out.error) ??
    artifactBreach(out.artifacts, limits.artifacts)
  );
}

export function outputLimitFailure(message: string): PythonResult {
  return failure('output-limit', { name: 'OutputLimitError', message }, [], []);
}

/**
 * Checks a finished run's result and artifacts as they cross into the sandbox host or the worker;
 * a breach replaces both with an output-limit failure and no artifacts.
 */
export function enforceOutputLimits(
  result: PythonResult,
  artifacts: Artifact[],
  limits: OutputLimits,
): { result: PythonResult; artifacts: Artifact[] } {
  const out: RunOutput = { output: result.output, stderr: result.stderr, artifacts };
  if (result.status === 'success') out.value = result.return_value;
  else out.error = result.error;
  const breach = findOutputBreach(out, limits);
  return breach === null ? { result, artifacts } : { result: outputLimitFailure(breach), artifacts: [] };
}
