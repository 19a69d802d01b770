// Progress hub: one gateway process follows the events of every task someone streams (SSE, GET
// /tasks/{id}/events) over ONE blocking Redis connection. A
// single XREAD BLOCK covers the progress stream of every task someone follows; when the set of
// streams changes, CLIENT UNBLOCK (sent on the command connection) ends the current XREAD so the
// next one includes the new key. Each subscriber has its own cursor and starts from id 0, so an
// event written before it subscribed is still delivered (the original's `$` race). Long polls,
// which only need to know that a task ended, use the cheaper completion-watch.ts.
//
// On a Redis Cluster one XREAD cannot name keys of different hash slots, and each task's keys have
// their own slot. There the hub reads each followed stream without blocking (all at once, one
// command per stream) and, when nothing came, sleeps `clusterPollMs` (a new subscriber wakes it).
import type { Names, TaskEvent } from '@neuroagent/contracts';
import { type Logger, parseStreamEntry, type Redis } from '@neuroagent/platform';

type Listener = (event: TaskEvent) => void;
/** One raw stream entry, for streams that are not a task's progress (an agent turn's events). */
export type EntryListener = (id: string, fields: string[]) => void;

interface Subscriber {
  cursor: string;
  listener: EntryListener;
}

interface Watched {
  subscribers: Set<Subscriber>;
}

export interface ProgressHubOptions {
  /** Dedicated connection: it spends its life blocked in XREAD. */
  blocking: Redis;
  /** Shared command connection, used for CLIENT UNBLOCK. */
  commands: Redis;
  names: Names;
  blockMs: number;
  /** Entries read per stream per XREAD. */
  count?: number;
  /** Redis Cluster only: the pause between two reads that found nothing (see the header). */
  clusterPollMs?: number;
  log: Logger;
}

type XreadReply = [string, [string, string[]][]][] | null;

export interface ProgressHub {
  /** `onClose` runs if the hub shuts down while subscribed (SSE streams end then). */
  subscribe(taskId: string, fromId: string, listener: Listener, onClose?: () => void): () => void;
  /** The same for any Redis Stream key: each entry after `fromId`, raw. */
  subscribeKey(key: string, fromId: string, listener: EntryListener, onClose?: () => void): () => void;
  waiterCount(): number;
  close(): Promise<void>;
}

/** Stream ids are `<ms>-<seq>`; compare numerically, as Redis does. */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

export function createProgressHub(opts: ProgressHubOptions): ProgressHub {
  const { blocking, commands, names, log } = opts;
  const count = opts.count ?? 100;
  const watched = new Map<string, Watched>(); // by progress key
  let closed = false;
  let blocked = false;
  let unblockSent = false;
  let blockingClientId: number | null = null;
  let wake: (() => void) | null = null;
  let loop: Promise<void> | null = null;
  let subscribers = 0;
  const closers = new Set<() => void>();

  blocking.on('ready', () => {
    blockingClientId = null; // a reconnect gets a new client id
  });

  function changed(): void {
    if (wake) {
      const w = wake;
      wake = null;
      w();
      return;
    }
    if (blocked && !unblockSent && blockingClientId !== null) {
      unblockSent = true;
      commands
        .client('UNBLOCK', blockingClientId)
        .catch((err: unknown) => log.warn({ err }, 'CLIENT UNBLOCK failed'));
    }
  }

  function dispatch(key: string, entries: [string, string[]][]): void {
    const w = watched.get(key);
    if (!w) return;
    for (const [id, fields] of entries) {
      for (const sub of w.subscribers) {
        if (compareStreamIds(id, sub.cursor) <= 0) continue;
        sub.cursor = id;
        sub.listener(id, fields);
      }
    }
  }

  /** Cluster mode: one XREAD per stream, none blocking; sleeps when nothing came. */
  async function pollEach(keys: string[], ids: string[]): Promise<void> {
    const replies = await Promise.all(
      keys.map(
        (key, i) => blocking.xread('COUNT', count, 'STREAMS', key, ids[i] as string) as Promise<XreadReply>,
      ),
    );
    let got = false;
    for (const res of replies) {
      if (!res) continue;
      for (const [key, entries] of res) {
        got ||= entries.length > 0;
        dispatch(key, entries);
      }
    }
    if (got || closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = null;
        resolve();
      }, opts.clusterPollMs ?? 100);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async function run(): Promise<void> {
    while (!closed) {
      if (watched.size === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      try {
        const keys: string[] = [];
        const ids: string[] = [];
        for (const [key, w] of watched) {
          let min: string | null = null;
          for (const s of w.subscribers)
            if (min === null || compareStreamIds(s.cursor, min) < 0) min = s.cursor;
          keys.push(key);
          ids.push(min ?? '0');
        }
        if (blocking.isCluster) {
          await pollEach(keys, ids);
          continue;
        }
        blockingClientId ??= Number(await blocking.client('ID'));
        blocked = true;
        unblockSent = false;
        const res = (await blocking.xread(
          'COUNT',
          count,
          'BLOCK',
          opts.blockMs,
          'STREAMS',
          ...keys,
          ...ids,
        )) as XreadReply;
        blocked = false;
        if (res) for (const [key, entries] of res) dispatch(key, entries);
      } catch (err) {
        blocked = false;
        if (closed) break;
        log.warn({ err }, 'long-poll XREAD failed: retrying');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  function subscribe(taskId: string, fromId: string, listener: Listener, onClose?: () => void): () => void {
    const onEntry: EntryListener = (id, fields) => {
      const event = parseStreamEntry(id, fields);
      if (event) listener(event);
    };
    return subscribeKey(names.progressKey(taskId), fromId, onEntry, onClose);
  }

  function subscribeKey(
    key: string,
    fromId: string,
    listener: EntryListener,
    onClose?: () => void,
  ): () => void {
    if (closed) throw new Error('progress hub is closed');
    if (onClose) closers.add(onClose);
    let w = watched.get(key);
    const isNewKey = !w;
    if (!w) {
      w = { subscribers: new Set() };
      watched.set(key, w);
    }
    const sub: Subscriber = { cursor: fromId, listener };
    w.subscribers.add(sub);
    subscribers++;
    // An existing key's XREAD already starts at or before this cursor only if fromId is not older.
    if (isNewKey || compareStreamIds(fromId, ids0(w, sub)) < 0) changed();
    loop ??= run();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (onClose) closers.delete(onClose);
      subscribers--;
      w.subscribers.delete(sub);
      if (w.subscribers.size === 0) watched.delete(key);
    };
  }

  /** The smallest cursor of the other subscribers of a key (what the running XREAD uses). */
  function ids0(w: Watched, except: Subscriber): string {
    let min = '18446744073709551615-0';
    for (const s of w.subscribers) if (s !== except && compareStreamIds(s.cursor, min) < 0) min = s.cursor;
    return min;
  }

  return {
    subscribe,
    subscribeKey,
    waiterCount: () => subscribers,
    async close() {
      closed = true;
      for (const close of [...closers]) close();
      changed();
      await loop?.catch(() => {});
    },
  };
}
