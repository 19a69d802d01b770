// run_python: the script runs in the sandbox process's Pyodide pool. Python errors, timeouts and
// limits are results (status "error"), not task failures; a dead sandbox is retried. Figures and
// /output files come back as bytes and are stored here, outside the sandbox (it has no credentials).

import { createPythonSandbox } from '../python/sandbox-client.ts';
import { buildSandboxConfig } from '../python/sandbox-config.ts';
import type { HandlerFactory } from './types.ts';

export const createRunPythonHandler: HandlerFactory<'run_python'> = async ({ config, log }) => {
  const sandbox = createPythonSandbox({
    config: await buildSandboxConfig(config, log),
    restartDelayMs: config.python.sandbox_restart_ms,
    log: log.child({ module: 'python-sandbox' }),
  });
  await sandbox.start();
  return {
    concurrency: config.python.threads,
    async run(input, ctx) {
      const { result } = await sandbox.run(input.python_script, ctx.signal);
      return { result, storage_id: [] };
    },
    close: () => sandbox.close(),
  };
};
