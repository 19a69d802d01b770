// NATS connection and JetStream provisioning. Provisioning creates what is absent and never
// changes what exists: recreating a deliver-all consumer on a Limits stream would re-run a week of
// jobs (docs/reliability.md). Changing them is an operator action (`npm run provision -- --update`).
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { Names, QueueName } from '@neuroagent/contracts';
import type { Logger } from './logger.ts';
import type { NatsSettings } from './settings.ts';

const NS_PER_MS = 1_000_000;

export async function connectNats(
  settings: Pick<NatsSettings, 'url'> & Partial<Pick<NatsSettings, 'async_traces'>>,
  name: string,
  log: Logger,
): Promise<NatsConnection> {
  const nc = await connect({
    servers: settings.url.split(',').map((s) => s.trim()),
    name,
    noAsyncTraces: !(settings.async_traces ?? false),
    // Keep reconnecting forever: a worker or gateway must survive a NATS restart without a restart of its own.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    waitOnFirstConnect: false,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        log.warn(
          { status: s.type, server: 'server' in s ? s.server : undefined },
          'nats connection status changed',
        );
      }
    }
  })();
  return nc;
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

export interface StreamPlan {
  names: Names;
  nats: NatsSettings;
}

export async function ensureStreams(jsm: JetStreamManager, plan: StreamPlan, log: Logger, update = false) {
  const { names, nats } = plan;
  const streams = [
    {
      name: names.stream,
      subjects: [names.streamSubjects],
      max_age: nats.stream_max_age_s * 1000 * NS_PER_MS,
    },
    // Dead letters stay longer than jobs, so an operator has time to look at them.
    {
      name: names.dlqStream,
      subjects: [names.dlqSubjects],
      max_age: nats.stream_max_age_s * 4 * 1000 * NS_PER_MS,
    },
  ];
  for (const s of streams) {
    const config = {
      name: s.name,
      subjects: s.subjects,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: s.max_age,
      duplicate_window: nats.duplicate_window_s * 1000 * NS_PER_MS,
      num_replicas: nats.stream_replicas,
      max_msg_size: nats.max_msg_bytes,
      allow_direct: true,
    };
    try {
      await jsm.streams.info(s.name);
      if (update) {
        await jsm.streams.update(s.name, config);
        log.info({ stream: s.name }, 'stream updated');
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(config);
      log.info({ stream: s.name, subjects: s.subjects }, 'stream created');
    }
  }
}

export interface ConsumerPlan {
  queue: QueueName;
  ackWaitMs: number;
  maxDeliver: number;
  maxAckPending: number;
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  names: Names,
  plan: ConsumerPlan,
  log: Logger,
  update = false,
): Promise<void> {
  const durable = names.consumerName(plan.queue);
  const config = {
    durable_name: durable,
    filter_subject: names.queueFilter(plan.queue),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: plan.ackWaitMs * NS_PER_MS,
    max_deliver: plan.maxDeliver,
    max_ack_pending: plan.maxAckPending,
    // No BackOff: it silently replaces AckWait; infrastructure retries use nak(delay) instead.
  };
  try {
    await jsm.consumers.info(names.stream, durable);
    if (update) {
      const {
        durable_name: _d,
        filter_subject: _f,
        deliver_policy: _p,
        ack_policy: _a,
        ...editable
      } = config;
      await jsm.consumers.update(names.stream, durable, editable);
      log.info({ consumer: durable }, 'consumer updated');
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(names.stream, config);
    log.info({ consumer: durable, filter: config.filter_subject }, 'consumer created');
  }
}

export { jetstreamManager };
