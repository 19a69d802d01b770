// Completion watch: wakes long polls when their task ends, for any number of waiters, over ONE
// blocking Redis connection that reads ONE key. Workers append every status change to the global
// `tasks:events` stream in the same MULTI as the result (result first), so tailing that stream
// tells this process which tasks just finished, and their results are readable by then.
//
// Why not one XREAD over every waited-for task's own progress stream (the progress hub, which
// SSE still uses)? That command carries every key on every call and must be re-issued (CLIENT
// UNBLOCK) whenever a waiter arrives, so its cost grows with the number of waiters. Here the key
// set never changes: a waiter costs a map entry, and a wake costs the same at 10 or 10,000.
//
// A sharded feed (`…_REDIS__EVENTS_SHARDS` > 1, e.g. over a Redis Cluster's primaries) gets one such
// tail per shard, each with its own connection and cursor; the waiters are shared.
//
// No lost wake-ups: a waiter is registered BEFORE the caller looks at the task (or publishes it),
// and the tail reads every entry appended after its cursor, which was taken before the first
// waiter could exist. So a terminal event is either seen by the caller's own read, or by the tail.
import { decodeTaskEventsEntry, isTerminal, type Names, type TaskRecord } from '@neuroagent/contracts';
import type { Logger, Redis } from '@neuroagent/platform';

export interface CompletionWatchOptions {
  /**
   * One dedicated connection per shard of `tasks:events` (names.eventsKeys(), same order): each
   * spends its life blocked in XREAD on its shard.
   */
  blocking: readonly Redis[];
  names: Names;
  blockMs: number;
  /** Entries read per XREAD; the tail keeps reading without blocking while there are more. */
  count?: number;
  log: Logger;
}

/** One waiter for one task, registered before the caller reads or publishes the task. */
export interface Expectation {
  /** True when the task ended; false on timeout, abort, or shutdown. */
  settled(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** Releases the waiter; call it in `finally`. Idempotent. */
  release(): void;
  /**
   * The finished task's record when the worker sent it with the event (small records, see
   * TASKS_REDIS__EVENT_RECORD_MAX_BYTES), so the caller need not read it back; null otherwise.
   */
  record(): (TaskRecord & { owner: string }) | null;
}

export interface CompletionWatch {
  /** Resolves once the tail has its starting cursor (before that, waiters would be missed). */
  start(): Promise<void>;
  expect(taskId: string): Expectation;
  waiterCount(): number;
  close(): Promise<void>;
}

interface Waiter {
  ended: boolean;
  record: string | null;
  wake: ((ended: boolean) => void) | null;
}

type XreadReply = [string, [string, string[]][]][] | null;

export function createCompletionWatch(opts: CompletionWatchOptions): CompletionWatch {
  const { names, log } = opts;
  const keys = names.eventsKeys();
  if (opts.blocking.length !== keys.length)
    throw new Error(`completion watch: ${keys.length} tasks:events shards need as many connections`);
  const count = opts.count ?? 1000;
  const waiters = new Map<string, Set<Waiter>>();
  let waiterTotal = 0;
  let closed = false;
  let loops: Promise<void>[] | null = null;

  function dispatch(entries: [string, string[]][]): void {
    for (const [id, fields] of entries) {
      const entry = decodeTaskEventsEntry(id, fields);
      if (entry === null || !isTerminal(entry.status)) continue;
      const set = waiters.get(entry.taskId);
      if (!set) continue;
      for (const w of set) {
        w.ended = true;
        w.record = entry.record ?? null;
        w.wake?.(true);
      }
    }
  }

  /** The tail of one shard: its own connection and cursor. */
  function shardTail(key: string, blocking: Redis) {
    let cursor: string | null = null;
    async function lastId(): Promise<string> {
      const last = (await blocking.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
      return last[0]?.[0] ?? '0-0';
    }
    return {
      async init(): Promise<void> {
        try {
          cursor ??= await lastId();
        } catch (err) {
          // Redis is down at boot: the loop takes the cursor when it comes back. Waiters until then
          // answer 202 at their timeout, exactly as if their task were still running.
          log.warn({ err, key }, 'cannot read the tasks:events cursor yet; the tail will retry');
        }
      },
      async run(): Promise<void> {
        let block = true;
        while (!closed) {
          try {
            cursor ??= await lastId();
            const args: (string | number)[] = ['COUNT', count];
            if (block) args.push('BLOCK', opts.blockMs);
            const res = (await blocking.xread(
              ...(args as ['COUNT', number]),
              'STREAMS',
              key,
              cursor,
            )) as XreadReply;
            const entries = res?.[0]?.[1] ?? [];
            if (entries.length > 0) {
              cursor = entries[entries.length - 1]?.[0] ?? cursor;
              dispatch(entries);
            }
            // A full batch means more is waiting: read on without blocking until caught up.
            block = entries.length < count;
          } catch (err) {
            if (closed) break;
            log.warn({ err, key }, 'completion tail XREAD failed: retrying');
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
        }
      },
    };
  }
  const tails = keys.map((key, n) => shardTail(key, opts.blocking[n] as Redis));

  return {
    async start() {
      await Promise.all(tails.map((t) => t.init()));
      loops ??= tails.map((t) => t.run());
    },
    expect(taskId) {
      const w: Waiter = { ended: false, record: null, wake: null };
      let set = waiters.get(taskId);
      if (!set) {
        set = new Set();
        waiters.set(taskId, set);
      }
      set.add(w);
      waiterTotal++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        waiterTotal--;
        set.delete(w);
        if (set.size === 0 && waiters.get(taskId) === set) waiters.delete(taskId);
        w.wake?.(w.ended);
      };
      return {
        release,
        record() {
          if (w.record === null) return null;
          try {
            const r = JSON.parse(w.record) as TaskRecord & { owner: string };
            return r.id === taskId && typeof r.owner === 'string' && isTerminal(r.status) ? r : null;
          } catch {
            return null; // not ours to fail on: the caller reads the record instead
          }
        },
        settled(timeoutMs, signal) {
          if (w.ended) return Promise.resolve(true);
          if (closed || released || signal?.aborted) return Promise.resolve(false);
          return new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => done(false), timeoutMs);
            const onAbort = () => done(false);
            function done(ended: boolean) {
              w.wake = null;
              clearTimeout(timer);
              signal?.removeEventListener('abort', onAbort);
              resolve(ended);
            }
            w.wake = done;
            signal?.addEventListener('abort', onAbort, { once: true });
          });
        },
      };
    },
    waiterCount: () => waiterTotal,
    async close() {
      closed = true;
      // Every waiter answers now (its route then replies 202 with the task id).
      for (const set of waiters.values()) for (const w of set) w.wake?.(false);
      for (const conn of opts.blocking) conn.disconnect();
      await Promise.all((loops ?? []).map((l) => l.catch(() => {})));
    },
  };
}
