// The BullMQ peer of the product path, out of the box: a Queue and a QueueEvents in the bench
// process, a Worker at concurrency 2 in its own process (bullmq-worker.ts) returning its input.
// One sample = queue.add() + job.waitUntilFinished(queueEvents), BullMQ's own way for a producer
// to wait for a job's result. Default job options (completed jobs are kept, as BullMQ does unless
// told otherwise). It runs against a redis-server of its own, so that its keys, its blocking
// connections and its CPU stay apart from the product's Redis.
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { stopChild } from './teardown.ts';

/** The installed BullMQ, recorded with the figures. */
export const BULLMQ_VERSION = (createRequire(import.meta.url)('bullmq/package.json') as { version: string })
  .version;
const BULLMQ_WORKER = fileURLToPath(new URL('./bullmq-worker.ts', import.meta.url));
const QUEUE = 'bench_echo';
const CONCURRENCY = 2;
const WAIT_MS = 30_000;

export class BullmqUnexpectedResult extends Error {
  readonly code = 'bullmq_unexpected_result';
}

export interface BullmqPath {
  workerPid: number;
  concurrency: number;
  /** One no-op job added and waited for; its duration in ms. */
  once(): Promise<number>;
  sequential(n: number): Promise<number[]>;
  close(): Promise<void>;
}

export async function startBullmqPath(redisUrl: string): Promise<BullmqPath> {
  const url = new URL(redisUrl);
  const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
  const queue = new Queue(QUEUE, { connection });
  const events = new QueueEvents(QUEUE, { connection });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  // Every outstanding waitUntilFinished() listens on both: 100 in flight is by design, not a leak.
  queue.setMaxListeners(0);
  events.setMaxListeners(0);

  const worker: ChildProcess = spawn(process.execPath, [BULLMQ_WORKER], {
    env: {
      PATH: process.env.PATH ?? '',
      BULLMQ_REDIS_URL: redisUrl,
      BULLMQ_QUEUE: QUEUE,
      BULLMQ_CONCURRENCY: String(CONCURRENCY),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  worker.stderr?.on('data', (b: Buffer) => stderr.push(b.toString()));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: worker.stdout! }).on('line', (l) => {
      if (l === 'bullmq worker ready') resolve();
    });
    worker.once('exit', (code) => reject(new Error(`bullmq worker exited (${code}): ${stderr.join('')}`)));
  });
  if (worker.pid === undefined) throw new Error('bullmq worker has no pid');

  async function one(): Promise<number> {
    const t0 = performance.now();
    const job = await queue.add('echo', { payload: 1 });
    const result = (await job.waitUntilFinished(events, WAIT_MS)) as { payload?: unknown } | undefined;
    const ms = performance.now() - t0;
    if (result?.payload !== 1) {
      throw new BullmqUnexpectedResult(`bullmq job ${job.id}: unexpected result ${JSON.stringify(result)}`);
    }
    return ms;
  }

  return {
    workerPid: worker.pid,
    concurrency: CONCURRENCY,
    once: one,
    async sequential(n) {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(await one());
      return out;
    },
    async close() {
      await stopChild(worker);
      await events.close();
      await queue.close();
    },
  };
}
