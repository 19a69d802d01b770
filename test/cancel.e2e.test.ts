// Cancelling tasks through the worker side of cancellation (the gateway's DELETE /tasks/{id} comes
// later): the Redis flag stops a task before it starts, and `ctl.cancel.<id>` on core NATS
// interrupts a running one. Real worker process, real NATS and Redis.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS, type TaskRecord } from '@neuroagent/contracts';
import { newTaskId, requestCancel } from '@neuroagent/platform';
import { signTaskHeaders, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startWorker } from './support/processes.ts';

describe('task cancellation (worker side)', () => {
  const ns = testNamespace('cancel');
  let clients: TestClients;
  let worker: ServiceProcess;

  before(async () => {
    clients = await testClients(ns);
    worker = await startWorker(workerEnv(ns, { TASKS_PYTHON__THREADS: '1', TASKS_PYTHON__TIMEOUT_S: '30' }));
  });
  after(async () => {
    await worker?.stop();
    await clients?.close();
  });

  async function publish(id: string, script: string) {
    const now = Date.now();
    const h = natsHeaders();
    h.set(HEADERS.msgId, id);
    const body = {
      v: 1,
      queue: 'python_q',
      task: 'run_python',
      input: { python_script: script },
      userId: 'u1',
      submittedAt: new Date(now).toISOString(),
      startWithinS: 600,
    };
    const data = JSON.stringify(body);
    await clients.js.publish(ns.names.taskSubject('python_q', id), data, {
      headers: signTaskHeaders(ns, id, data, h),
    });
  }

  const record = async (id: string) => clients.store.readRecord(id);

  it('never starts a task whose cancel flag is set: status cancelled, no started event', async () => {
    const id = newTaskId();
    await requestCancel(clients.nc, clients.store, ns.names, id);
    await publish(id, '"should never run"');
    const rec = await waitFor(
      async () => {
        const r = await record(id);
        return r?.status === 'cancelled' ? r : null;
      },
      20_000,
      'the task to be cancelled',
    );
    assert.equal(rec.error?.code, 'cancelled');
    const events = await clients.redis.xrange(ns.names.progressKey(id), '-', '+');
    assert.deepEqual(
      events.map(([, f]) => f[1]),
      ['error'],
    );
  });

  it('interrupts a running task: status cancelled, result error_type cancelled, the worker serves on', async () => {
    const id = newTaskId();
    await publish(id, 'print("working")\nwhile True:\n    pass');
    await waitFor(async () => (await record(id))?.status === 'running', 20_000, 'the task to start');
    const t0 = performance.now();
    await requestCancel(clients.nc, clients.store, ns.names, id);
    const rec = (await waitFor(
      async () => {
        const r = await record(id);
        return r?.status === 'cancelled' ? r : null;
      },
      10_000,
      'the running task to be cancelled',
    )) as TaskRecord & { result: { result: Record<string, unknown> } };
    assert.ok(performance.now() - t0 < 2000, 'cancelled within 2 s');
    assert.equal(rec.error?.code, 'cancelled');
    assert.equal(rec.result.result.status, 'error');
    assert.equal(rec.result.result.error_type, 'cancelled');

    const next = newTaskId();
    await publish(next, '6*7');
    const done = await waitFor(
      async () => {
        const r = await record(next);
        return r?.status === 'succeeded' ? r : null;
      },
      20_000,
      'the next task',
    );
    assert.equal((done.result as { result: { return_value: number } }).result.return_value, 42);
  });
});
