// Prometheus metrics of one worker process, served on their own port (TASKS_METRICS__PORT) so that
// an HPA on custom metrics can scale a worker Deployment as KEDA does: runs by task and outcome,
// run durations, runs in flight and slot utilisation per queue, and each queue's lag (messages its
// durable consumer has not delivered yet, read from JetStream at scrape time). A python_q worker
// adds its sandbox: the thread pool's size, live, busy and queued counts (asked of the sandbox
// process at scrape time), how each run's interpreter was prepared (reset in place, restored, ...),
// every fallback from the fast path by reason, and sandbox restarts. A dedicated Registry, never
// prom-client's global one. Must not import the python modules: a circuit worker never loads them.
import { createServer, type Server } from 'node:http';
import type { Logger } from '@neuroagent/platform';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** How a delivery ended, from the worker's side. */
export type RunOutcome = 'succeeded' | 'failed' | 'cancelled' | 'retried' | 'dead_lettered' | 'duplicate';

export interface QueueGauges {
  queue: string;
  busy(): number;
  size: number;
  /** Messages of the queue not yet delivered to any worker; null when JetStream cannot say. */
  lag(): Promise<number | null>;
}

/** The python sandbox's thread pool, asked at every scrape; null when it does not answer. */
export interface PythonPoolSource {
  poolStats(): Promise<{ size: number; threads: number; busy: number; queued: number } | null>;
}

/** What the python sandbox client counts through (sandbox-client.ts, SandboxObserver). */
export interface PythonSandboxMetrics {
  prepared(kind: string): void;
  fallback(reason: string, times: number): void;
  restarted(): void;
}

export interface WorkerMetrics {
  readonly registry: Registry;
  /** Records one delivery's end; `durationMs` from the start of its run (0 when it never ran). */
  observe(task: string, outcome: RunOutcome, durationMs: number): void;
  /** Adds a queue's live gauges, read at every scrape. */
  watch(queue: QueueGauges): void;
  /**
   * Registers the python sandbox's metrics (one sandbox per process): the pool gauges, read from
   * `pool` at every scrape, and the counters the returned observer feeds. `kinds` and `reasons`
   * list every label value, so that each series exists at 0 before its first count.
   */
  watchPythonSandbox(
    pool: PythonPoolSource,
    labels: { kinds: readonly string[]; reasons: readonly string[] },
  ): PythonSandboxMetrics;
}

// Runs go from a millisecond (echo) to many minutes (a circuit download and scan).
const RUN_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 60, 300, 900];

export function createWorkerMetrics(opts: { defaultMetrics?: boolean } = {}): WorkerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const queues: QueueGauges[] = [];
  const runs = new Counter({
    name: 'task_runs_total',
    help: 'Deliveries handled, by task and outcome',
    labelNames: ['task', 'outcome'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'task_run_duration_seconds',
    help: 'Time from the start of a run to its outcome, by task and outcome',
    labelNames: ['task', 'outcome'] as const,
    buckets: RUN_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'task_runs_in_flight',
    help: 'Tasks running in this process, by queue',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      for (const q of queues) this.set({ queue: q.queue }, q.busy());
    },
  });
  new Gauge({
    name: 'worker_slot_utilization',
    help: 'Busy slots over slots of this process, by queue (1 = every slot runs a task)',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      for (const q of queues) this.set({ queue: q.queue }, q.size > 0 ? q.busy() / q.size : 0);
    },
  });
  new Gauge({
    name: 'queue_lag_messages',
    help: "Messages of the queue its durable consumer has not delivered yet (the stream's backlog)",
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      for (const q of queues) {
        const lag = await q.lag().catch(() => null);
        if (lag !== null) this.set({ queue: q.queue }, lag);
      }
    },
  });
  let python: PythonSandboxMetrics | null = null;
  return {
    registry,
    observe(task, outcome, durationMs) {
      runs.inc({ task, outcome });
      durations.observe({ task, outcome }, durationMs / 1000);
    },
    watch(queue) {
      queues.push(queue);
    },
    watchPythonSandbox(pool, labels) {
      if (python) throw new Error('the python sandbox metrics are registered already');
      python = createPythonSandboxMetrics(registry, pool, labels);
      return python;
    },
  };
}

// ------------------------------------------------------------------ python sandbox

function createPythonSandboxMetrics(
  registry: Registry,
  pool: PythonPoolSource,
  labels: { kinds: readonly string[]; reasons: readonly string[] },
): PythonSandboxMetrics {
  // One question to the sandbox per scrape, shared by the five gauges that read its answer.
  let asking: Promise<Awaited<ReturnType<PythonPoolSource['poolStats']>>> | null = null;
  const ask = () => {
    asking ??= pool
      .poolStats()
      .catch(() => null)
      .finally(() => {
        asking = null;
      });
    return asking;
  };
  const poolGauge = (
    name: string,
    help: string,
    read: (s: { size: number; threads: number; busy: number; queued: number }) => number,
  ) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const stats = await ask();
        if (stats) this.set(read(stats));
      },
    });
  poolGauge(
    'python_pool_size',
    'Threads the python sandbox pool keeps (TASKS_PYTHON__THREADS)',
    (s) => s.size,
  );
  poolGauge(
    'python_pool_threads',
    'Threads of the python sandbox pool alive now (fewer while a killed or recycled one is replaced)',
    (s) => s.threads,
  );
  poolGauge('python_pool_busy_threads', 'Threads of the python sandbox pool running a run', (s) => s.busy);
  poolGauge(
    'python_pool_queued_runs',
    'Runs waiting in the python sandbox pool for a thread (one is being replaced, or all are busy)',
    (s) => s.queued,
  );
  poolGauge(
    'python_pool_utilization',
    'Busy threads over the threads the python sandbox pool keeps (1 = every thread runs a run)',
    (s) => (s.size > 0 ? s.busy / s.size : 0),
  );
  const prepared = new Counter({
    name: 'python_interpreter_preparations_total',
    help: "Runs by how their interpreter was made pristine: reset in place, restore from the snapshot, the spare restored ahead, reuse (trusted mode), or a new thread's first",
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: 'python_sandbox_fallbacks_total',
    help: 'Slow paths the python sandbox took instead of its fast one, by reason (an interpreter replaced instead of reset in place, or a run handed to another thread)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'python_sandbox_restarts_total',
    help: 'Times the python sandbox process died after start-up and was started again',
    registers: [registry],
  });
  for (const kind of labels.kinds) prepared.inc({ kind }, 0);
  for (const reason of labels.reasons) fallbacks.inc({ reason }, 0);
  return {
    prepared(kind) {
      prepared.inc({ kind });
    },
    fallback(reason, times) {
      fallbacks.inc({ reason }, times);
    },
    restarted() {
      restarts.inc();
    },
  };
}

/** GET /metrics on `host:port`; anything else is 404. Resolves once listening. */
export async function serveWorkerMetrics(
  metrics: WorkerMetrics,
  where: { host: string; port: number },
  log: Logger,
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text))
      .catch((err: unknown) => {
        log.warn({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => resolve());
  });
  const address = server.address();
  log.info(
    { port: typeof address === 'object' && address ? address.port : where.port },
    'worker metrics listening',
  );
  return server;
}
