// Creates the task stream, the dead-letter stream and one durable consumer per queue from the
// worker configuration. Used at boot (TASKS_NATS__PROVISION) and by `npm run provision`.
import type { NatsConnection } from '@nats-io/nats-core';
import { createNames, type Names, type QueueName } from '@neuroagent/contracts';
import { ensureConsumer, ensureStreams, jetstreamManager, type Logger } from '@neuroagent/platform';
import type { WorkerConfig } from './config.ts';

export function workerNames(config: Readonly<WorkerConfig>): Names {
  return createNames({
    stream: config.nats.stream,
    subjectPrefix: config.nats.subject_prefix,
    keyPrefix: config.redis.key_prefix,
    eventsShards: config.redis.events_shards,
  });
}

/** `update` also applies the configured limits to existing streams and consumers. */
export async function provisionQueues(
  nc: NatsConnection,
  config: Readonly<WorkerConfig>,
  queues: readonly QueueName[],
  log: Logger,
  update = false,
): Promise<void> {
  const names = workerNames(config);
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { names, nats: config.nats }, log, update);
  for (const queue of queues) {
    const plan = {
      queue,
      ackWaitMs: config.nats.ack_wait_s * 1000,
      maxDeliver: config.nats.max_deliver,
      maxAckPending: config.nats.max_ack_pending,
    };
    await ensureConsumer(jsm, names, plan, log, update);
  }
}
