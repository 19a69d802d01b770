// Both services validate their configuration at boot and refuse to start with a message that
// names the variable; the worker refuses a queue it has no handler for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GATEWAY_MAIN, startService, WORKER_MAIN } from './support/processes.ts';

async function bootFailure(main: string, env: Record<string, string>) {
  const p = startService(main, { PATH: process.env.PATH ?? '', ...env });
  const code = await p.exited;
  await new Promise((r) => setTimeout(r, 50)); // let the last stderr/stdout lines arrive
  return { code, output: [...p.stderr, ...p.lines.map((l) => JSON.stringify(l))].join('\n') };
}

describe('boot-time validation', () => {
  it('the worker names an invalid variable and an unknown queue', async () => {
    const r = await bootFailure(WORKER_MAIN, { TASKS_PYTHON__THREADS: 'many', TASKS_QUEUES: 'gpu_q' });
    assert.equal(r.code, 78);
    assert.match(r.output, /TASKS_PYTHON__THREADS: Expected integer \(got "many"\)/);
    assert.match(r.output, /TASKS_QUEUES/);
  });

  it('the gateway names a misspelt variable', async () => {
    const r = await bootFailure(GATEWAY_MAIN, { NEUROAGENT_HTTP__PROT: '80' });
    assert.equal(r.code, 78);
    assert.match(r.output, /NEUROAGENT_HTTP__PROT: unknown variable/);
  });
});
