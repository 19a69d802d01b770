// The gateway's Redis connections, opened and closed in one place. A connection that spends its
// life blocked in XREAD cannot carry other commands, so each blocking reader has its own:
//   commands     meta, records, idempotency claims, rate-limit counters;
//   hub          the SSE progress hub's XREAD over tasks' progress streams;
//   completions  the completion watch's XREAD, one per shard of tasks:events (long polls);
//   ledger       the ledger consumer's XREADGROUP, one per shard of tasks:events.
// Their owners stop their loops first (close() of each); close() here then ends whatever is left.
import { closeRedis, connectRedis, type Logger, type Redis, type RedisTarget } from '@neuroagent/platform';

export interface GatewayRedis {
  commands: Redis;
  hub: Redis;
  completions: Redis[];
  ledger: Redis[];
  /** Quits the command connection (its replies are flushed) and drops the blocking ones. */
  close(): Promise<void>;
}

export function openGatewayRedis(
  target: RedisTarget,
  shards: number,
  log: Logger,
  options: { autoPipelining?: boolean } = {},
): GatewayRedis {
  const commands = connectRedis(target, 'gateway', log, options);
  const perShard = (role: string) =>
    Array.from({ length: shards }, (_, n) => connectRedis(target, shards === 1 ? role : `${role}-${n}`, log));
  const hub = connectRedis(target, 'gateway-longpoll', log);
  const completions = perShard('gateway-completions');
  const ledger = perShard('gateway-ledger');
  return {
    commands,
    hub,
    completions,
    ledger,
    async close() {
      // A blocked XREAD would hold QUIT until it times out: these are dropped, not quit.
      for (const conn of [hub, ...completions, ...ledger]) if (conn.status !== 'end') conn.disconnect();
      await closeRedis(commands);
    },
  };
}
