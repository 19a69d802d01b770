// The raw worker: the least a queue worker can do, as its own process so its CPU is measured like
// the product worker's. One pull consumer read with consume() (one long-lived subscription, so a
// delivery that races a pull's expiry is still received); for each
// message: SET raw:<id>:result + XADD raw:<id>:progress in one MULTI, then ack. No validation, no
// logging, no ledger events. Started by raw-path.ts; configured by the environment:
// RAW_NATS_URL, RAW_REDIS_URL, RAW_STREAM, RAW_CONSUMER, RAW_KEY_PREFIX.
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`raw-worker: ${name} is required`);
  return v;
}

const prefix = process.env.RAW_KEY_PREFIX ?? 'raw:';
const nc = await connect({ servers: env('RAW_NATS_URL'), name: 'raw-worker' });
const redis = new Redis(env('RAW_REDIS_URL'), { connectionName: 'raw-worker' });
const consumer = await jetstream(nc).consumers.get(env('RAW_STREAM'), env('RAW_CONSUMER'));
let stopped = false;

process.on('SIGTERM', () => {
  stopped = true;
  void nc.close().finally(() => {
    redis.disconnect();
    process.exit(0);
  });
});

process.stdout.write('raw worker ready\n');
const messages = await consumer.consume({ max_messages: 256, expires: 5000 });
for await (const m of messages) {
  if (stopped) break;
  const id = m.subject.slice(m.subject.lastIndexOf('.') + 1);
  redis
    .multi()
    .set(`${prefix}${id}:result`, m.string())
    .xadd(`${prefix}${id}:progress`, '*', 'type', 'done')
    .exec()
    .then(
      () => m.ack(),
      () => m.nak(),
    );
}
