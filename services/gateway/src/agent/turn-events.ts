// A turn's events in Redis (docs/agent.md, "Events"): one Redis Stream per turn, so any gateway can
// serve its SSE stream and a client that lost its connection resumes from Last-Event-ID, which is
// the stream entry id. The gateway running the turn is the only writer. Text deltas are coalesced:
// while one XADD is in flight the next deltas gather into one entry, so a fast model costs one
// entry per Redis round trip, not one per token.
//
// Presence: every open SSE stream of a turn refreshes the turn's watch key; the runner, once its
// own client is gone, cancels the turn when the key has expired (no one resumed within the grace).
import type { Names, TurnEventData, TurnEventType } from '@neuroagent/contracts';
import { isTurnEventType } from '@neuroagent/contracts';
import type { Logger, Redis } from '@neuroagent/platform';

export interface TurnEventLogOptions {
  redis: Redis;
  names: Names;
  /** Lifetime of a finished turn's events. */
  ttlS: number;
  log: Logger;
}

export interface TurnEventWriter {
  /** Appends an event after everything emitted before it; never throws (Redis down is logged). */
  emit<T extends TurnEventType>(type: T, data: TurnEventData[T]): Promise<void>;
  /** A piece of the model's text, coalesced with the pieces after it. */
  text(delta: string): void;
  /** Resolves once everything emitted so far is in Redis (or failed). */
  flush(): Promise<void>;
  /** The turn ended: its events live `ttlS` more seconds. */
  finish(): Promise<void>;
}

export interface TurnEvent {
  id: string;
  type: TurnEventType;
  /** The event's JSON, as written. */
  data: string;
}

export interface TurnEventLog {
  /** `liveS`: how long the events must outlive a turn that never calls finish() (its gateway died). */
  writer(turnId: string, liveS: number): TurnEventWriter;
  /** Refreshes the turn's watch key every third of `graceMs` until the returned stop() is called. */
  watch(turnId: string, graceMs: number): () => void;
  /** True while some stream of the turn refreshed its watch key within the grace. */
  watched(turnId: string): Promise<boolean>;
}

/** Decodes one stream entry; null for anything this gateway did not write. */
export function parseTurnEntry(id: string, fields: string[]): TurnEvent | null {
  let type: string | undefined;
  let data: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'type') type = fields[i + 1];
    else if (fields[i] === 'data') data = fields[i + 1];
  }
  if (type === undefined || data === undefined || !isTurnEventType(type)) return null;
  return { id, type, data };
}

export function createTurnEventLog(opts: TurnEventLogOptions): TurnEventLog {
  const { redis, names, log } = opts;

  return {
    writer(turnId, liveS) {
      const key = names.turnEventsKey(turnId);
      let chain: Promise<void> = Promise.resolve();
      let pendingText = '';
      let first = true;

      const append = (type: TurnEventType, data: string): Promise<void> => {
        const xadd = first
          ? redis
              .multi()
              .xadd(key, '*', 'type', type, 'data', data)
              .expire(key, liveS + opts.ttlS)
              .exec()
          : redis.xadd(key, '*', 'type', type, 'data', data);
        first = false;
        return xadd.then(
          () => {},
          (err: unknown) => log.warn({ err, turnId, type }, 'could not append a turn event'),
        );
      };
      const enqueue = (step: () => Promise<void>): Promise<void> => {
        chain = chain.then(step);
        return chain;
      };

      return {
        emit(type, data) {
          return enqueue(() => append(type, JSON.stringify(data)));
        },
        text(delta) {
          if (delta === '') return;
          const queued = pendingText !== '';
          pendingText += delta;
          if (queued) return;
          void enqueue(() => {
            const text = pendingText;
            pendingText = '';
            return append('text', JSON.stringify({ delta: text }));
          });
        },
        flush: () => chain,
        async finish() {
          await chain;
          await redis
            .expire(key, opts.ttlS)
            .catch((err: unknown) => log.warn({ err, turnId }, 'turn events expire failed'));
        },
      };
    },

    watch(turnId, graceMs) {
      if (graceMs <= 0) return () => {};
      const key = names.turnWatchKey(turnId);
      const refresh = () =>
        void redis.set(key, '1', 'PX', Math.ceil(graceMs)).catch((err: unknown) => {
          log.warn({ err, turnId }, 'could not refresh the turn watch key');
        });
      refresh();
      const timer = setInterval(refresh, Math.max(50, Math.floor(graceMs / 3)));
      timer.unref();
      return () => clearInterval(timer);
    },

    async watched(turnId) {
      // Redis down: nobody can prove a watcher, but nobody can resume either; keep the turn
      // running rather than cancel work on an outage.
      return (await redis.exists(names.turnWatchKey(turnId)).catch(() => 1)) > 0;
    },
  };
}
