// run_python: the script runs in the sandbox process's Pyodide pool. Python errors, timeouts and
// limits are results (status "error"), not task failures; a dead sandbox is retried. Figures and
// /output files come back as bytes and are stored here, outside the sandbox (it has no credentials).
import { PYTHON_ERROR_TYPES } from '@neuroagent/contracts';
import { connectStorage, type Span, SpanKind, type Storage, withSpan } from '@neuroagent/platform';
import { SANDBOX_FALLBACKS } from '../python/isolation-stats.ts';
import { PREPARATIONS } from '../python/protocol.ts';
import { failure } from '../python/result-mapping.ts';
import { createPythonSandbox, type RunOutcome } from '../python/sandbox-client.ts';
import { buildSandboxConfig } from '../python/sandbox-config.ts';
import { ArtifactRejectedError, checkArtifacts, storeArtifacts } from './artifact-store.ts';
import type { HandlerFactory } from './types.ts';

export const createRunPythonHandler: HandlerFactory<'run_python'> = async ({ config, log, metrics }) => {
  const { enabled, ...storageSettings } = config.storage;
  const storage: Storage | null = enabled
    ? await connectStorage(storageSettings, log.child({ module: 'storage' }))
    : null;
  // The gauges ask the sandbox for its pool at scrape time (the server listens only once every
  // handler is installed); the sandbox counts through the observer.
  const observer = metrics?.watchPythonSandbox(
    { poolStats: () => sandbox.poolStats() },
    { kinds: PREPARATIONS, reasons: SANDBOX_FALLBACKS },
  );
  const sandbox = createPythonSandbox({
    config: await buildSandboxConfig(config, log),
    restartDelayMs: config.python.sandbox_restart_ms,
    log: log.child({ module: 'python-sandbox' }),
    observer,
  });
  await sandbox.start();
  return {
    concurrency: config.python.threads,
    async run(input, ctx) {
      const { result, artifacts } = await withSpan('sandbox run', SANDBOX_SPAN, async (span) => {
        const outcome = await sandbox.run(input.python_script, ctx.signal);
        if (span) describeRun(span, outcome);
        return outcome;
      });
      if (artifacts.length === 0) return { result, storage_id: [] };
      try {
        checkArtifacts(artifacts);
      } catch (err) {
        if (!(err instanceof ArtifactRejectedError)) throw err;
        // Nothing of a report that breaks a rule is stored or sent back.
        const error = { name: 'OutputLimitError', message: err.message };
        return { result: failure('output-limit', error, [], []), storage_id: [] };
      }
      if (!storage) {
        result.stderr.push(
          `[${artifacts.length} artifact(s) not stored: storage is disabled (TASKS_STORAGE__ENABLED)]`,
        );
        return { result, storage_id: [] };
      }
      const ids = await storeArtifacts(storage, {
        taskId: ctx.taskId,
        userId: ctx.userId,
        threadId: ctx.threadId ?? input.thread_id,
        artifacts,
      });
      return { result, storage_id: ids };
    },
    async close() {
      await sandbox.close();
      storage?.close();
    },
  };
};

const SANDBOX_SPAN = { kind: SpanKind.INTERNAL };
const ERROR_TYPES: readonly string[] = PYTHON_ERROR_TYPES;

/** How the run ended, never what it printed: the sandbox is untrusted, so only known values. */
function describeRun(span: Span, outcome: RunOutcome): void {
  const { result } = outcome;
  span.setAttribute('neuroagent.python.status', result.status === 'success' ? 'success' : 'error');
  if (result.status === 'error' && ERROR_TYPES.includes(result.error_type))
    span.setAttribute('neuroagent.python.error_type', result.error_type);
  span.setAttribute('neuroagent.python.artifacts', outcome.artifacts.length);
}
