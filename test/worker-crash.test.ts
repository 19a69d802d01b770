// A worker process killed with SIGKILL in the middle of a task: JetStream redelivers the message
// after AckWait and a new worker process completes it. Short AckWait through config, private stream.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('worker killed with SIGKILL while running a task', () => {
  const ns = testNamespace('crash');
  const env = workerEnv(ns, {
    TASKS_NATS__ACK_WAIT_S: '2',
    TASKS_PYTHON__TIMEOUT_S: '20',
    TASKS_PYTHON__THREADS: '1',
  });
  let clients: TestClients;
  let gateway: ServiceProcess & { url: string };
  const workers: ServiceProcess[] = [];

  before(async () => {
    clients = await testClients(ns);
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, { NEUROAGENT_TOOLS__RUN_PYTHON__TIMEOUT_S: '60' }),
    });
  });
  after(async () => {
    await gateway?.stop();
    for (const w of workers) await w.stop();
    await clients?.close();
  });

  it('redelivers the task to a new worker process, which completes it', async () => {
    const first = await startWorker(env);
    workers.push(first);
    const sandboxPids = childPids(first.proc.pid!);
    assert.equal(sandboxPids.length, 1, 'the worker runs one sandbox child process');

    const script = 'import time\nt = time.time()\nwhile time.time() - t < 2.5:\n    pass\n"survived"';
    const response = fetch(`${gateway.url}/tools/run-python`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ python_script: script }),
    });

    const taskId = await waitFor(
      async () => {
        const keys = await clients.redis.keys(`${ns.keyPrefix}task:*:meta`);
        for (const key of keys)
          if ((await clients.redis.hget(key, 'status')) === 'running') return key.match(/\{([^}]+)\}/)?.[1];
        return null;
      },
      20_000,
      'the task to start on the first worker',
    );
    first.proc.kill('SIGKILL');
    assert.equal(await first.exited, 'SIGKILL');
    await waitFor(async () => sandboxPids.every((p) => !isAlive(p)), 5000, 'the orphaned sandbox to exit');

    const second = await startWorker(env);
    workers.push(second);
    const res = await response;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      result: { status: 'success', output: [], stderr: [], return_value: 'survived' },
      storage_id: [],
    });
    const record = (await (await fetch(`${gateway.url}/tasks/${taskId}`)).json()) as TaskRecord;
    assert.equal(record.status, 'succeeded');
    assert.equal(record.attempts, 2, 'delivered twice: once to the killed worker, once to the new one');
    const started = await clients.redis.xrange(ns.names.progressKey(String(taskId)), '-', '+');
    const startedBy = started
      .filter(([, f]) => f[1] === 'started')
      .map(([, f]) => JSON.parse(f[f.indexOf('data') + 1] ?? '{}').worker as string);
    assert.equal(startedBy.length, 2);
    assert.notEqual(startedBy[0], startedBy[1], 'two different worker processes started it');
  });

  it('keeps a task that runs longer than AckWait with working() heartbeats: one delivery only', async () => {
    for (const w of workers.splice(0)) await w.stop();
    // Two threads: had the message been redelivered at AckWait, the free thread would run it again.
    workers.push(await startWorker({ ...env, TASKS_PYTHON__THREADS: '2' }));
    const script = 'import time\nt = time.time()\nwhile time.time() - t < 5:\n    pass\n"steady"';
    const res = await fetch(`${gateway.url}/tools/run-python`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ python_script: script }),
    });
    assert.equal(res.status, 200);
    const taskId = String(res.headers.get('x-task-id'));
    const events = await clients.redis.xrange(ns.names.progressKey(taskId), '-', '+');
    const types = events.map(([, f]) => f[1]);
    assert.deepEqual(types, ['started', 'done'], 'AckWait is 2 s and the task ran 5 s, yet it started once');
  });
});
