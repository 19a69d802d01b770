// run_python: the script runs in the sandbox process's Pyodide pool. Python errors, timeouts and
// limits are results (status "error"), not task failures; a dead sandbox is retried. Figures and
// /output files come back as bytes and are stored here, outside the sandbox (it has no credentials).
import { connectStorage, type Storage } from '@neuroagent/platform';
import { failure } from '../python/result-mapping.ts';
import { createPythonSandbox } from '../python/sandbox-client.ts';
import { buildSandboxConfig } from '../python/sandbox-config.ts';
import { ArtifactRejectedError, checkArtifacts, storeArtifacts } from './artifact-store.ts';
import type { HandlerFactory } from './types.ts';

export const createRunPythonHandler: HandlerFactory<'run_python'> = async ({ config, log }) => {
  const { enabled, ...storageSettings } = config.storage;
  const storage: Storage | null = enabled
    ? await connectStorage(storageSettings, log.child({ module: 'storage' }))
    : null;
  const sandbox = createPythonSandbox({
    config: await buildSandboxConfig(config, log),
    restartDelayMs: config.python.sandbox_restart_ms,
    log: log.child({ module: 'python-sandbox' }),
  });
  await sandbox.start();
  return {
    concurrency: config.python.threads,
    async run(input, ctx) {
      const { result, artifacts } = await sandbox.run(input.python_script, ctx.signal);
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
