// Pausing a queue (docs/admin-api.md): the gateway's admin API writes one key per queue to the
// JetStream key-value bucket `<stream>_CONTROL`; every worker watches its queues' keys and stops or
// resumes pulling as they change. JetStream keeps the bucket on disk (and replicated like the task
// stream), so a pause survives worker, gateway and Redis restarts, and a worker that starts while
// its queue is paused reads the state before its first pull.
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { QueuePause } from '@neuroagent/contracts';
import type { Logger } from './logger.ts';
import { createValidator } from './validator.ts';

const validPause = createValidator(QueuePause);
const codec = new TextDecoder();

export interface QueueControl {
  /** The queue's state; null when it was never paused (or its key holds garbage). */
  get(queue: string): Promise<QueuePause | null>;
  set(queue: string, state: QueuePause): Promise<void>;
  /**
   * Calls `onChange` with each queue's current state, then with every change, until the returned
   * function is called. Resolves once the current states have been delivered.
   */
  watch(
    queues: readonly string[],
    onChange: (queue: string, state: QueuePause | null) => void,
  ): Promise<() => void>;
}

/** Opens the bucket, creating it on first use with the task stream's replicas. */
export async function openQueueControl(
  nc: NatsConnection,
  opts: { bucket: string; replicas: number; log: Logger },
): Promise<QueueControl> {
  const kv: KV = await new Kvm(nc).create(opts.bucket, { history: 5, replicas: opts.replicas });

  // Anyone who may publish on NATS could write the key: what does not parse means "not paused",
  // loudly, so a forged value can neither crash a worker nor wedge it.
  function decode(queue: string, value: Uint8Array | undefined): QueuePause | null {
    if (value === undefined || value.length === 0) return null;
    try {
      return validPause.parse(JSON.parse(codec.decode(value)), `pause state of ${queue}`);
    } catch (err) {
      opts.log.warn({ err, queue, bucket: opts.bucket }, 'queue control: ignoring a malformed pause state');
      return null;
    }
  }

  async function get(queue: string): Promise<QueuePause | null> {
    const entry = await kv.get(queue);
    return entry && entry.operation === 'PUT' ? decode(queue, entry.value) : null;
  }

  return {
    get,
    async set(queue, state) {
      await kv.put(queue, JSON.stringify(state));
    },
    async watch(queues, onChange) {
      let stopped = false;
      const iterators = await Promise.all(queues.map((key) => kv.watch({ key })));
      // The watch delivers each key's last value first: read the current states directly so the
      // caller knows them before it resolves, whatever the iterator's timing.
      for (const queue of queues) onChange(queue, await get(queue));
      for (const [i, it] of iterators.entries()) {
        const queue = queues[i] as string;
        void (async () => {
          for await (const entry of it) {
            if (stopped) break;
            onChange(queue, entry.operation === 'PUT' ? decode(queue, entry.value) : null);
          }
        })().catch((err: unknown) => opts.log.error({ err, queue }, 'queue control: watch ended'));
      }
      return () => {
        stopped = true;
        for (const it of iterators) it.stop();
      };
    },
  };
}
