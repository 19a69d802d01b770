// Prometheus metrics of one worker process, served on their own port (TASKS_METRICS__PORT) so that
// an HPA on custom metrics can scale a worker Deployment as KEDA does: runs by task and outcome,
// run durations, runs in flight and slot utilisation per queue, and each queue's lag (messages its
// durable consumer has not delivered yet, read from JetStream at scrape time). A dedicated
// Registry, never prom-client's global one.
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

export interface WorkerMetrics {
  readonly registry: Registry;
  /** Records one delivery's end; `durationMs` from the start of its run (0 when it never ran). */
  observe(task: string, outcome: RunOutcome, durationMs: number): void;
  /** Adds a queue's live gauges, read at every scrape. */
  watch(queue: QueueGauges): void;
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
  return {
    registry,
    observe(task, outcome, durationMs) {
      runs.inc({ task, outcome });
      durations.observe({ task, outcome }, durationMs / 1000);
    },
    watch(queue) {
      queues.push(queue);
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
