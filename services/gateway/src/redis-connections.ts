// The gateway's Redis connections, opened and closed in one place. A connection that spends its
// life blocked in XREAD cannot carry other commands, so each blocking reader has its own:
//   commands     meta, records, idempotency claims, rate-limit counters;
//   hub          the SSE progress hub's XREAD over tasks' progress streams;
//   completions  the completion watch's XREAD on tasks:events (long polls);
//   ledger       the ledger consumer's XREADGROUP on tasks:events.
// Their owners stop their loops first (close() of each); close() here then ends whatever is left.
import { connectRedis, type Logger, type Redis } from '@neuroagent/platform';

export interface GatewayRedis {
  commands: Redis;
  hub: Redis;
  completions: Redis;
  ledger: Redis;
  /** Quits the command connection (its replies are flushed) and drops the blocking ones. */
  close(): Promise<void>;
}

export function openGatewayRedis(url: string, log: Logger): GatewayRedis {
  const commands = connectRedis(url, 'gateway', log);
  const blocking = {
    hub: connectRedis(url, 'gateway-longpoll', log),
    completions: connectRedis(url, 'gateway-completions', log),
    ledger: connectRedis(url, 'gateway-ledger', log),
  };
  return {
    commands,
    ...blocking,
    async close() {
      // A blocked XREAD would hold QUIT until it times out: these are dropped, not quit.
      for (const conn of Object.values(blocking)) if (conn.status !== 'end') conn.disconnect();
      if (commands.status === 'ready') await commands.quit().catch(() => commands.disconnect());
      else commands.disconnect();
    },
  };
}
