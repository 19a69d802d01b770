// One hardened Pyodide interpreter, restored from the snapshot (or loaded cold). Every run gets it
// pristine: reset in place to the image captured right after the restore (inplace-reset.ts), or,
// in restore mode, used once and discarded. That is what guarantees that no globals, imported
// modules, patched builtins or files survive from one user's code to the next.
import { readFileSync } from 'node:fs';
import { loadPyodide, type PyodideAPI } from 'pyodide';
import {
  captureImage,
  checkResetSupport,
  type FallbackReason,
  type InterpreterImage,
  resetBlocker,
  resetToImage,
} from './inplace-reset.ts';
import type { ThreadConfig } from './protocol.ts';
import { createTimerScope } from './thread-guards.ts';

const RUNNER_SOURCE = readFileSync(new URL('./runner.py', import.meta.url), 'utf8');

export type InterpreterOptions = Pick<
  ThreadConfig,
  'indexURL' | 'snapshot' | 'snapshotPackages' | 'lockFile' | 'packages' | 'packageCacheDir'
>;

/** What one run reports, built from the runner's tuple of plain values (see runner.py). */
export interface RunReport {
  ok: boolean;
  value?: unknown;
  interrupted: boolean;
  limit?: 'return' | 'memory';
  error?: { name: string; message: string; traceback?: string };
}

export interface Interpreter {
  pyodide: PyodideAPI;
  run(code: string, maxReturnBytes: number): Promise<RunReport>;
  missingImports(code: string): string[];
  collect(maxFiles: number, maxFileBytes: number, maxTotalBytes: number): [unknown[][], string[]];
  /** Trusted mode only: forget this run's output files and streams, keep everything else. */
  resetForReuse(): void;
  /** Checks that the in-place reset supports this Pyodide, and captures the image to reset to. */
  captureImage(): void;
  /** Why a reset cannot undo what the last run left, or null (needs captureImage()). */
  resetBlocker(maxGrowthBytes: number): FallbackReason | null;
  /** Returns the interpreter to its image; throws when it cannot (needs captureImage()). */
  reset(): void;
  readonly image: InterpreterImage | null;
  dispose(): void;
}

/** Options that must be identical when the snapshot is made and when it is restored. */
export function pyodideOptions(
  opts: Omit<InterpreterOptions, 'snapshot' | 'snapshotPackages'>,
  jsglobals: object,
) {
  const base: Record<string, unknown> = {
    indexURL: opts.indexURL,
    // Only timers: `import js` must not reach process, require or fetch (and is unregistered anyway).
    jsglobals,
    env: { HOME: '/home/pyodide', MPLBACKEND: 'AGG' },
    stdout: () => {},
    stderr: () => {},
  };
  if (opts.packages) {
    base.lockFileContents = opts.lockFile;
    base.packageBaseUrl = opts.packages.base;
    // In Node, Pyodide reads packages from packageCacheDir and writes downloads there.
    base.packageCacheDir = opts.packages.isUrl ? opts.packageCacheDir : opts.packages.base;
  }
  return base;
}

export async function createInterpreter(opts: InterpreterOptions): Promise<Interpreter> {
  const timers = createTimerScope();
  const options = pyodideOptions(opts, timers.globals);
  if (opts.snapshot) options._loadSnapshot = opts.snapshot;
  const pyodide = await loadPyodide(options);
  // The snapshot was made with an empty loadedPackages table (see snapshot-builder.ts).
  Object.assign(pyodide.loadedPackages, opts.snapshotPackages);
  harden(pyodide);
  const { run, missing, collect } = loadRunner(pyodide);
  let image: InterpreterImage | null = null;
  const quiet = () => {
    pyodide.setStdout({ batched: () => {} });
    pyodide.setStderr({ batched: () => {} });
  };
  const captured = () => {
    if (!image) throw new Error('no image captured for this interpreter');
    return image;
  };
  return {
    pyodide,
    get image() {
      return image;
    },
    captureImage() {
      checkResetSupport(pyodide);
      importBeforeCapture(pyodide);
      quiet();
      image = captureImage(pyodide);
    },
    resetBlocker(maxGrowthBytes) {
      return resetBlocker(pyodide, captured(), maxGrowthBytes);
    },
    reset() {
      timers.clearAll();
      resetToImage(pyodide, captured());
      quiet();
    },
    async run(code, maxReturnBytes) {
      const proxy = await run(code, maxReturnBytes);
      let report: unknown[];
      try {
        report = proxy.toJs();
      } finally {
        proxy.destroy();
      }
      return toReport(report, maxReturnBytes);
    },
    missingImports(code) {
      const proxy = missing(code);
      try {
        return proxy.toJs();
      } finally {
        proxy.destroy();
      }
    },
    collect(maxFiles, maxFileBytes, maxTotalBytes) {
      const proxy = collect(maxFiles, maxFileBytes, maxTotalBytes);
      try {
        return proxy.toJs({ depth: 3 });
      } finally {
        proxy.destroy();
      }
    },
    resetForReuse() {
      removeTree(pyodide, OUTPUT_DIR);
      quiet();
    },
    dispose() {
      timers.clearAll();
      image = null;
      quiet();
    },
  };
}

/**
 * Modules whose first import grows the function table (ctypes registers its callbacks then), which
 * no reset can undo. Imported into each interpreter before its image is taken, they no longer
 * cost the scripts that import them a fallback to a fresh restore.
 */
export const IMPORTED_BEFORE_CAPTURE = ['ctypes'];

function importBeforeCapture(pyodide: PyodideAPI): void {
  const scope = pyodide.globals.get('dict')() as { destroy(): void };
  try {
    pyodide.runPython(`import ${IMPORTED_BEFORE_CAPTURE.join(', ')}`, { globals: scope as never });
  } finally {
    scope.destroy();
  }
}

const OUTPUT_DIR = '/output';

interface EmscriptenFS {
  readdir(path: string): string[];
  lstat(path: string): { mode: number };
  isDir(mode: number): boolean;
  unlink(path: string): void;
  rmdir(path: string): void;
}

/** Removes a directory tree through Emscripten's FS (JS side, out of the user's reach). */
function removeTree(pyodide: PyodideAPI, path: string): void {
  const fs = (pyodide as unknown as { FS: EmscriptenFS }).FS;
  let mode: number;
  try {
    mode = fs.lstat(path).mode;
  } catch {
    return;
  }
  if (!fs.isDir(mode)) {
    fs.unlink(path);
    return;
  }
  for (const name of fs.readdir(path))
    if (name !== '.' && name !== '..') removeTree(pyodide, `${path}/${name}`);
  fs.rmdir(path);
}

export function toReport(t: unknown[], maxReturnBytes: number): RunReport {
  const [ok, valueJson, interrupted, limit, name, message, traceback] = t;
  if (ok === true && typeof valueJson === 'string') {
    // Measured here before it is parsed: the runner's own check runs within the user's reach.
    const bytes = Buffer.byteLength(valueJson, 'utf8');
    if (bytes > maxReturnBytes) {
      return {
        ok: false,
        interrupted: false,
        limit: 'return',
        error: {
          name: 'OutputLimitError',
          message: `return value is ${bytes} bytes of JSON, over the ${maxReturnBytes}-byte limit`,
        },
      };
    }
    try {
      return { ok: true, value: JSON.parse(valueJson), interrupted: false };
    } catch {
      return {
        ok: false,
        interrupted: false,
        error: { name: 'EncodingError', message: 'the return value could not be encoded as JSON' },
      };
    }
  }
  const report: RunReport = {
    ok: false,
    interrupted: interrupted === true,
    error: { name: String(name ?? 'Error'), message: String(message ?? '') },
  };
  if (typeof traceback === 'string' && traceback !== '' && report.error) report.error.traceback = traceback;
  if (limit === 'return' || limit === 'memory') report.limit = limit;
  return report;
}

type Proxy<T> = { toJs(o?: object): T; destroy(): void };
interface Runner {
  run: (code: string, max: number) => Promise<Proxy<unknown[]>>;
  missing: (code: string) => Proxy<string[]>;
  collect: (a: number, b: number, c: number) => Proxy<[unknown[][], string[]]>;
}

/**
 * Runs runner.py in a dict of its own, not in `__main__`, takes its four closures and empties the
 * dict: user code that imports `__main__` finds nothing of the runner to rebind.
 */
function loadRunner(pyodide: PyodideAPI): Runner {
  const scope = pyodide.globals.get('dict')() as {
    get(k: string): { toJs(o?: object): unknown[]; destroy(): void };
    clear(): void;
    destroy(): void;
  };
  try {
    // A filename of its own keeps the runner's frames apart from the user's `<exec>` frames.
    pyodide.runPython(RUNNER_SOURCE, { globals: scope as never, filename: '<sandbox-runner>' });
    const api = scope.get('_neuro_api');
    const [run, missing, collect, hardenRunner] = api.toJs({ depth: 1 }) as [
      Runner['run'],
      Runner['missing'],
      Runner['collect'],
      (() => void) & { destroy(): void },
    ];
    api.destroy();
    hardenRunner();
    hardenRunner.destroy();
    return { run, missing, collect };
  } finally {
    scope.clear();
    scope.destroy();
  }
}

/** Removes the two import routes from Python to JavaScript: `import js` and `import pyodide_js`. */
export function harden(pyodide: PyodideAPI): void {
  pyodide.unregisterJsModule('js');
  pyodide.unregisterJsModule('pyodide_js');
}
