// A worker's Prometheus endpoint (TASKS_METRICS__PORT), against a real echo_q worker process: runs by
// task and outcome with their durations, runs in flight and slot utilisation while tasks hold their
// slots, and the queue's lag while more tasks wait than the worker has slots.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS } from '@neuroagent/contracts';
import { newTaskId } from '@neuroagent/platform';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { freePort } from './support/private-servers.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import { dlqCopy, submitTask } from './support/reliability-helpers.ts';

const SLOTS = 2;

describe('worker metrics endpoint', () => {
  const ns = testNamespace('wmetrics');
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let metricsUrl = '';

  before(async () => {
    clients = await testClients(ns);
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    worker = await startWorker(
      workerEnv(ns, {
        TASKS_QUEUES: 'echo_q',
        TASKS_ECHO__CONCURRENCY: String(SLOTS),
        TASKS_METRICS__PORT: String(port),
      }),
    );
    await worker.waitForLog((l) => l.msg === 'worker metrics listening', 20_000, 'the metrics server');
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  const sample = async (name: string, labels: Record<string, string>): Promise<number | null> => {
    const text = await (await fetch(metricsUrl)).text();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      const inside = line.slice(name.length + 1, line.indexOf('}'));
      const has = Object.entries(labels).every(([k, v]) => inside.includes(`${k}="${v}"`));
      if (has) return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return null;
  };
  const waitRecord = (id: string) =>
    waitFor(
      async () => {
        const r = await clients.store.readRecord(id);
        return r && (r.status === 'succeeded' || r.status === 'failed') ? r : null;
      },
      20_000,
      `task ${id}`,
      100,
    );

  it('counts runs by task and outcome, with their durations', async () => {
    const ids = await Promise.all(
      [1, 2, 3].map((n) => submitTask(gateway.url, 'echo', { payload: n, delay_ms: 50 })),
    );
    for (const id of ids) await waitRecord(id);
    await waitFor(
      async () =>
        (await sample('task_runs_total', { task: 'echo', outcome: 'succeeded' })) === 3 ? true : null,
      10_000,
      'three succeeded runs counted',
      100,
    );
    assert.equal(await sample('task_run_duration_seconds_count', { task: 'echo', outcome: 'succeeded' }), 3);
    const sum = (await sample('task_run_duration_seconds_sum', { task: 'echo', outcome: 'succeeded' })) ?? 0;
    assert.ok(sum >= 0.15, `each run held its slot for 50 ms (sum ${sum} s)`);
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/other'))).status, 404);
  });

  it('shows runs in flight, slot utilisation and the queue lag while tasks wait', async () => {
    const ids = await Promise.all(
      Array.from({ length: SLOTS + 3 }, (_, n) =>
        submitTask(gateway.url, 'echo', { payload: n, delay_ms: 3000 }),
      ),
    );
    await waitFor(
      async () => ((await sample('task_runs_in_flight', { queue: 'echo_q' })) === SLOTS ? true : null),
      10_000,
      'every slot busy',
      100,
    );
    assert.equal(await sample('worker_slot_utilization', { queue: 'echo_q' }), 1);
    const lag = await waitFor(
      async () => {
        const n = await sample('queue_lag_messages', { queue: 'echo_q' });
        return n !== null && n >= 1 ? n : null;
      },
      10_000,
      'the waiting tasks in the lag',
      100,
    );
    assert.ok(lag <= 3, `lag ${lag}: the tasks not yet delivered`);
    for (const id of ids) await waitRecord(id);
    await waitFor(
      async () => ((await sample('queue_lag_messages', { queue: 'echo_q' })) === 0 ? true : null),
      10_000,
      'the lag back to 0',
      100,
    );
    assert.equal(await sample('task_runs_in_flight', { queue: 'echo_q' }), 0);
  });

  it('labels a dead-lettered message by a registered task name only, never by a forged header', async () => {
    const publish = async (taskName: string) => {
      const id = newTaskId();
      const h = natsHeaders();
      h.set(HEADERS.msgId, id);
      h.set(HEADERS.taskName, taskName);
      await clients.js.publish(ns.names.taskSubject('echo_q', id), '{not json', { headers: h });
      await waitFor(() => dlqCopy(clients, ns, 'echo_q', id), 20_000, `the dead-letter copy of ${id}`);
    };
    await publish('forged_name_a');
    await publish('forged_name_b');
    await publish('echo');
    await waitFor(
      async () =>
        (await sample('task_runs_total', { task: 'unknown', outcome: 'dead_lettered' })) === 2 ? true : null,
      10_000,
      'two forged names counted as unknown',
      100,
    );
    assert.equal(await sample('task_runs_total', { task: 'echo', outcome: 'dead_lettered' }), 1);
    const text = await (await fetch(metricsUrl)).text();
    assert.doesNotMatch(text, /forged_name/, 'no series carries a forged name');
  });
});
