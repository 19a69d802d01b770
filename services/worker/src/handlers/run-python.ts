// run_python: the script runs in the sandbox process's Pyodide pool. Python errors, timeouts and
// limits are results (status "error"), not task failures; only a dead sandbox is retried.
import { createPythonSandbox } from '../python/sandbox-client.ts';
import type { HandlerFactory } from './types.ts';

export const createRunPythonHandler: HandlerFactory<'run_python'> = async ({ config, log }) => {
  const sandbox = createPythonSandbox({
    limits: {
      threads: config.python.threads,
      timeoutMs: Math.round(config.python.timeout_s * 1000),
      killGraceMs: config.python.kill_grace_ms,
      maxOutputBytes: config.python.max_output_kb * 1024,
      maxReturnBytes: config.python.max_return_kb * 1024,
    },
    restartDelayMs: config.python.sandbox_restart_ms,
    log: log.child({ module: 'python-sandbox' }),
  });
  await sandbox.start();
  return {
    concurrency: config.python.threads,
    async run(input) {
      const result = await sandbox.run(input.python_script);
      return { result, storage_id: [] };
    },
    close: () => sandbox.close(),
  };
};
