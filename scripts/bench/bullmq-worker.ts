// The BullMQ peer's worker, as its own process so its CPU is measured like the product worker's:
// one BullMQ Worker at concurrency 2 whose processor returns its input (the no-op, like our
// echo). Started by bullmq-path.ts; configured by the environment: BULLMQ_REDIS_URL, BULLMQ_QUEUE,
// BULLMQ_CONCURRENCY (default 2).
import { Worker } from 'bullmq';

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`bullmq-worker: ${name} is required`);
  return v;
}

const url = new URL(env('BULLMQ_REDIS_URL'));
const worker = new Worker(env('BULLMQ_QUEUE'), async (job) => job.data, {
  connection: { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null },
  concurrency: Number(process.env.BULLMQ_CONCURRENCY ?? '2'),
});
worker.on('error', (err) => process.stderr.write(`bullmq-worker: ${String(err)}\n`));

process.on('SIGTERM', () => {
  void worker.close().finally(() => process.exit(0));
});

await worker.waitUntilReady();
process.stdout.write('bullmq worker ready\n');
