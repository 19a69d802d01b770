// Stopping a turn from any gateway: DELETE /threads/{id}/turn may reach a replica other than the
// one running the turn. The request is a Redis flag (which the runner reads before every model
// call, so a lost broadcast only delays the stop) and a core NATS broadcast (which stops it at
// once, mid-stream or mid-task). Core NATS, not JetStream: a stop is worth nothing later.

import type { NatsConnection } from '@nats-io/nats-core';
import type { Names } from '@neuroagent/contracts';
import type { Logger, Redis } from '@neuroagent/platform';

export interface TurnControl {
  /** Calls `onStop` when any gateway asks this turn to stop; returns the unsubscribe. */
  listen(turnId: string, onStop: () => void): () => void;
  /** Asks whichever gateway runs the turn to stop it. */
  request(turnId: string): Promise<void>;
  /** True once a stop was requested (the flag outlives a lost broadcast). */
  requested(turnId: string): Promise<boolean>;
}

export function createTurnControl(opts: {
  nc: NatsConnection;
  redis: Redis;
  names: Names;
  /** How long a stop request is kept: the longest a turn may run. */
  flagTtlS: number;
  log: Logger;
}): TurnControl {
  const { nc, redis, names, log } = opts;
  return {
    listen(turnId, onStop) {
      const sub = nc.subscribe(names.turnCancelSubject(turnId), {
        max: 1,
        callback: (err) => {
          if (err) log.warn({ err, turnId }, 'turn stop subscription failed');
          else onStop();
        },
      });
      return () => sub.unsubscribe();
    },
    async request(turnId) {
      await redis.set(names.turnCancelKey(turnId), '1', 'EX', opts.flagTtlS);
      nc.publish(names.turnCancelSubject(turnId));
      await nc.flush();
    },
    async requested(turnId) {
      return (await redis.exists(names.turnCancelKey(turnId)).catch(() => 0)) > 0;
    },
  };
}
