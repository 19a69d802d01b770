// The worker's heartbeat (docs/admin-api.md, "Queues"): every interval, one field per consumed queue
// in the Redis hash `workers:{<queue>}`, which the gateway lists as that queue's workers. The
// key's TTL outlives a few beats only, so a queue whose workers all died ends up with no hash;
// a dead worker's field is ignored by the gateway once stale and removed by it later.
import type { Names, QueueName, WorkerHeartbeat } from '@neuroagent/contracts';
import type { Logger, Redis } from '@neuroagent/platform';

export interface HeartbeatSource {
  queue: QueueName;
  slots: number;
  busy(): number;
  paused(): boolean;
}

// A hash outlives this many missed beats; the gateway's staleness window is its own setting.
const TTL_BEATS = 12;

export function startHeartbeat(opts: {
  redis: Redis;
  names: Names;
  workerId: string;
  intervalMs: number;
  sources: readonly HeartbeatSource[];
  log: Logger;
}): { beat(): Promise<void>; stop(): Promise<void> } {
  const ttlMs = Math.ceil(opts.intervalMs * TTL_BEATS);
  async function beat(): Promise<void> {
    const at = Date.now();
    // One key per queue, each its own hash slot on a cluster: written one by one, not in a MULTI.
    for (const s of opts.sources) {
      const hb: WorkerHeartbeat = {
        id: opts.workerId,
        slots: s.slots,
        busy: s.busy(),
        paused: s.paused(),
        at,
      };
      const key = opts.names.workersKey(s.queue);
      await opts.redis.hset(key, opts.workerId, JSON.stringify(hb));
      await opts.redis.pexpire(key, ttlMs);
    }
  }
  let failing = false;
  const timer = setInterval(() => {
    beat().then(
      () => {
        failing = false;
      },
      (err: unknown) => {
        // A missed beat only makes the worker look gone for a while: warn once per outage.
        if (!failing) opts.log.warn({ err }, 'heartbeat: could not write to Redis');
        failing = true;
      },
    );
  }, opts.intervalMs);
  timer.unref();
  return {
    beat,
    async stop() {
      clearInterval(timer);
      // Leaving on purpose: drop this worker from the list at once rather than after it goes stale.
      for (const s of opts.sources) {
        await opts.redis.hdel(opts.names.workersKey(s.queue), opts.workerId).catch(() => 0);
      }
    },
  };
}
