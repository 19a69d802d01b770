// The python sandbox's metrics, through the real run_python handler and a real WorkerMetrics, after
// real Pyodide runs: the pool gauges (size, live, busy, queued, utilisation) asked of the sandbox
// process, how each run's interpreter was prepared, the fallbacks by reason (an interpreter
// replaced instead of reset, a run handed to another thread), each as Prometheus reads it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '@neuroagent/platform';
import { waitFor } from '@neuroagent/platform/testing';
import { loadWorkerConfig } from '../src/config.ts';
import { createRunPythonHandler } from '../src/handlers/run-python.ts';
import type { TaskContext, TaskHandler } from '../src/handlers/types.ts';
import { createWorkerMetrics, type WorkerMetrics } from '../src/metrics.ts';
import { SANDBOX_FALLBACKS } from '../src/python/isolation-stats.ts';
import { PREPARATIONS } from '../src/python/protocol.ts';

const log = createLogger('test', 'silent');

function context(n: number): TaskContext {
  return {
    taskId: `metrics-${n}`,
    userId: 'metrics-test',
    threadId: undefined,
    attempt: 1,
    log,
    signal: new AbortController().signal,
    progress: async () => {},
  };
}

/** One sample as a scrape sees it (collect() runs); null when the series does not exist. */
async function sample(metrics: WorkerMetrics, name: string, labels: Record<string, string> = {}) {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const hit = metric?.values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return hit ? hit.value : null;
}

async function startHandler(env: Record<string, string>) {
  const metrics = createWorkerMetrics({ defaultMetrics: false });
  const handler = await createRunPythonHandler({ config: loadWorkerConfig(env), log, metrics });
  let n = 0;
  const run = async (code: string) => (await handler.run({ python_script: code }, context(n++))).result;
  return { metrics, handler, run };
}

describe('python sandbox metrics (reset mode, one thread, no spare)', () => {
  let metrics: WorkerMetrics;
  let handler: TaskHandler<'run_python'>;
  let run: (code: string) => Promise<{ status: string }>;

  before(async () => {
    ({ metrics, handler, run } = await startHandler({
      TASKS_PYTHON__THREADS: '1',
      TASKS_PYTHON__TIMEOUT_S: '5',
      TASKS_PYTHON__SPARE_INTERPRETER: 'false',
    }));
  });
  after(() => handler?.close());

  it('has every kind and reason series at 0 before any run, and the pool at rest', async () => {
    for (const kind of PREPARATIONS) {
      assert.equal(await sample(metrics, 'python_interpreter_preparations_total', { kind }), 0, kind);
    }
    for (const reason of SANDBOX_FALLBACKS) {
      assert.equal(await sample(metrics, 'python_sandbox_fallbacks_total', { reason }), 0, reason);
    }
    assert.equal(await sample(metrics, 'python_sandbox_restarts_total'), 0);
    assert.equal(await sample(metrics, 'python_pool_size'), 1);
    assert.equal(await sample(metrics, 'python_pool_threads'), 1);
    assert.equal(await sample(metrics, 'python_pool_busy_threads'), 0);
    assert.equal(await sample(metrics, 'python_pool_queued_runs'), 0);
    assert.equal(await sample(metrics, 'python_pool_utilization'), 0);
  });

  it('shows the thread busy and a second run queued while the first sleeps, then the pool at rest', async () => {
    const runs = [run('import time\ntime.sleep(1.5)\n1'), run('2')];
    await waitFor(
      async () =>
        (await sample(metrics, 'python_pool_busy_threads')) === 1 &&
        (await sample(metrics, 'python_pool_queued_runs')) === 1
          ? true
          : null,
      5000,
      'one run busy and one queued',
      50,
    );
    assert.equal(await sample(metrics, 'python_pool_utilization'), 1);
    for (const r of await Promise.all(runs)) assert.equal(r.status, 'success', JSON.stringify(r));
    await waitFor(
      async () => ((await sample(metrics, 'python_pool_busy_threads')) === 0 ? true : null),
      5000,
      'the pool at rest',
      50,
    );
    assert.equal(await sample(metrics, 'python_pool_queued_runs'), 0);
    assert.equal(await sample(metrics, 'python_pool_utilization'), 0);
    // The thread's first run, then one reset in place.
    assert.equal(await sample(metrics, 'python_interpreter_preparations_total', { kind: 'new_thread' }), 1);
    assert.equal(await sample(metrics, 'python_interpreter_preparations_total', { kind: 'reset' }), 1);
  });

  it('counts resets in place, and a fallback with its reason followed by a restore', async () => {
    const count = (kind: string) => sample(metrics, 'python_interpreter_preparations_total', { kind });
    const resets = (await count('reset')) ?? 0;
    assert.equal((await run('x = 1')).status, 'success');
    assert.equal((await run('y = 2')).status, 'success');
    assert.equal(await count('reset'), resets + 2);
    // A ctypes callback grows the function table: the interpreter cannot be reset in place.
    await run('import ctypes\ncb = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)\ncb()');
    assert.equal(await sample(metrics, 'python_sandbox_fallbacks_total', { reason: 'table_grew' }), 1);
    assert.equal(await count('restore'), 0);
    assert.equal((await run('3')).status, 'success');
    assert.equal(await count('restore'), 1, 'the run after the fallback got a fresh restore');
    assert.equal(await count('spare'), 0);
    assert.equal(await sample(metrics, 'python_sandbox_fallbacks_total', { reason: 'heap_growth' }), 0);
  });
});

describe('python sandbox metrics (a thread recycled after every run)', () => {
  let metrics: WorkerMetrics;
  let handler: TaskHandler<'run_python'>;
  let run: (code: string) => Promise<{ status: string }>;

  before(async () => {
    ({ metrics, handler, run } = await startHandler({
      TASKS_PYTHON__THREADS: '1',
      TASKS_PYTHON__RECYCLE_AFTER_RUNS: '1',
    }));
  });
  after(() => handler?.close());

  it('counts every run as a new thread, and the runs handed over from a thread on its way out', async () => {
    // The queued runs go to the thread that is exiting after its one run: the host hands each on.
    const results = await Promise.all([1, 2, 3].map((n) => run(`import time\ntime.sleep(0.2)\n${n}`)));
    for (const r of results) assert.equal(r.status, 'success', JSON.stringify(r));
    assert.equal(await sample(metrics, 'python_interpreter_preparations_total', { kind: 'new_thread' }), 3);
    assert.equal(await sample(metrics, 'python_interpreter_preparations_total', { kind: 'reset' }), 0);
    const redispatched = await sample(metrics, 'python_sandbox_fallbacks_total', { reason: 'redispatched' });
    assert.ok(redispatched !== null && redispatched >= 1, `redispatched ${redispatched}`);
    assert.equal(await sample(metrics, 'python_pool_threads'), 1, 'the pool is whole again');
  });
});
