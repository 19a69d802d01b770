// A real Python sandbox built from worker configuration, exactly as the run_python handler builds it.
import { createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from '../src/config.ts';
import { createPythonSandbox } from '../src/python/sandbox-client.ts';
import { buildSandboxConfig } from '../src/python/sandbox-config.ts';

const log = createLogger('test', 'silent');

export type TestSandbox = Awaited<ReturnType<typeof startSandbox>>;

export async function startSandbox(env: Record<string, string>) {
  const config = loadWorkerConfig(env);
  const raw = createPythonSandbox({ config: await buildSandboxConfig(config, log), restartDelayMs: 50, log });
  await raw.start();
  return {
    raw,
    run: async (code: string, signal?: AbortSignal) => (await raw.run(code, signal)).result,
    runWithArtifacts: (code: string, signal?: AbortSignal) => raw.run(code, signal),
    close: () => raw.close(),
    pid: () => raw.pid(),
  };
}
