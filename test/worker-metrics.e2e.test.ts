// A worker's Prometheus endpoint (TASKS_METRICS__PORT), against a real echo_q worker process: runs by
// task and outcome with their durations, runs in flight and slot utilisation while tasks hold their
// slots, and the queue's lag while more tasks wait than the worker has slots. Then a real python_q
// worker: its sandbox pool, interpreter preparations, fallbacks and restarts.
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

/** One sample of the worker's /metrics text; null when the series is absent. */
async function scrape(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | null> {
  const text = await (await fetch(url)).text();
  for (const line of text.split('\n')) {
    const bare = line.startsWith(`${name} `);
    if (!bare && !line.startsWith(`${name}{`)) continue;
    const inside = bare ? '' : line.slice(name.length + 1, line.indexOf('}'));
    const has = Object.entries(labels).every(([k, v]) => inside.includes(`${k}="${v}"`));
    if (has) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

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

  const sample = (name: string, labels: Record<string, string>) => scrape(metricsUrl, name, labels);
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

describe('python worker metrics endpoint', () => {
  const ns = testNamespace('pymetrics');
  const THREADS = 2;
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let metricsUrl = '';
  const sample = (name: string, labels: Record<string, string> = {}) => scrape(metricsUrl, name, labels);
  const runPython = async (python_script: string) => {
    const res = await fetch(`${gateway.url}/tools/run-python`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ python_script }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { result: { status: string; error_type?: string } }).result;
  };
  const sandboxPids = () =>
    worker.lines.filter((l) => l.msg === 'python sandbox ready').map((l) => Number(l.pid));

  before(async () => {
    clients = await testClients(ns);
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    worker = await startWorker(
      workerEnv(ns, {
        TASKS_QUEUES: 'python_q',
        TASKS_PYTHON__THREADS: String(THREADS),
        TASKS_PYTHON__TIMEOUT_S: '1',
        TASKS_PYTHON__KILL_GRACE_MS: '300',
        TASKS_PYTHON__SANDBOX_RESTART_MS: '100',
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

  it('shows the pool at rest: its size, every thread alive, none busy or queued', async () => {
    assert.equal(await sample('python_pool_size'), THREADS);
    assert.equal(await sample('python_pool_threads'), THREADS);
    assert.equal(await sample('python_pool_busy_threads'), 0);
    assert.equal(await sample('python_pool_queued_runs'), 0);
    assert.equal(await sample('python_pool_utilization'), 0);
    assert.equal(await sample('python_sandbox_restarts_total'), 0);
    assert.equal(await sample('python_sandbox_fallbacks_total', { reason: 'interrupted' }), 0);
  });

  it('counts how each run got its interpreter: a new thread first, then resets in place', async () => {
    const RUNS = 4;
    for (let n = 0; n < RUNS; n++) assert.equal((await runPython(`${n} * 2`)).status, 'success');
    const kind = async (k: string) =>
      (await sample('python_interpreter_preparations_total', { kind: k })) ?? 0;
    const fresh = await kind('new_thread');
    assert.ok(fresh >= 1 && fresh <= THREADS, `new_thread ${fresh}`);
    assert.equal(await kind('reset'), RUNS - fresh, 'every other run was on an interpreter reset in place');
    assert.equal((await kind('restore')) + (await kind('spare')) + (await kind('reuse')), 0);
  });

  it('counts a fallback by its reason: a run interrupted at the time limit', async () => {
    const r = await runPython('while True: pass');
    assert.equal(r.error_type, 'timeout', JSON.stringify(r));
    await waitFor(
      async () =>
        (await sample('python_sandbox_fallbacks_total', { reason: 'interrupted' })) === 1 ? true : null,
      10_000,
      'the interrupted fallback counted',
      100,
    );
    assert.equal(await sample('python_sandbox_fallbacks_total', { reason: 'table_grew' }), 0);
  });

  it('shows every thread busy while runs hold them', async () => {
    const runs = Array.from({ length: THREADS }, () => runPython('import time\ntime.sleep(0.8)\n1'));
    await waitFor(
      async () => ((await sample('python_pool_busy_threads')) === THREADS ? true : null),
      10_000,
      'every thread busy',
      50,
    );
    assert.equal(await sample('python_pool_utilization'), 1);
    for (const r of await Promise.all(runs)) assert.equal(r.status, 'success', JSON.stringify(r));
    await waitFor(
      async () => ((await sample('python_pool_busy_threads')) === 0 ? true : null),
      10_000,
      'the pool at rest',
      50,
    );
  });

  it('counts a restart of the sandbox process, and shows the pool whole again', async () => {
    const [pid] = sandboxPids();
    assert.ok(pid && pid > 0, 'the sandbox logged its pid');
    process.kill(pid, 'SIGKILL');
    await worker.waitForLog(
      (l) => l.msg === 'python sandbox ready' && Number(l.pid) !== pid,
      60_000,
      'the restarted sandbox',
    );
    assert.equal(await sample('python_sandbox_restarts_total'), 1);
    assert.equal(await sample('python_pool_threads'), THREADS);
    assert.equal((await runPython('6 * 7')).status, 'success');
  });
});
