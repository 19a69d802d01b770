// Feeds the ledger from the global `tasks:events` stream (docs/reliability.md) through a Redis consumer
// group, so exactly one gateway replica applies each event. Delivery is at-least-once: an entry
// is XACKed only after the ledger write, and applyEvent() is idempotent, so a replica that dies
// between the two only causes a harmless re-apply. Entries a dead replica left pending are taken
// over with XAUTOCLAIM once idle for `claimIdleMs`. Never imports Koa or NATS.
import { decodeTaskEventsEntry, type Names } from '@neuroagent/contracts';
import {
  ATTR,
  closeRedis,
  errorMessage,
  type Logger,
  markErrorCode,
  type Redis,
  ROOT_CONTEXT,
  SpanKind,
  tracingEnabled,
  withSpan,
} from '@neuroagent/platform';
import type { Ledger, LedgerEvent } from './ledger.ts';

export interface LedgerConsumerOptions {
  /** MUST be a dedicated connection: XREADGROUP BLOCK holds it, and stop() disconnects it. */
  redis: Redis;
  names: Names;
  /** Which shard of `tasks:events` (names.eventsKeys()) this consumer reads; one consumer per shard. */
  shard?: number;
  ledger: Pick<Ledger, 'applyEvent' | 'applyEvents'>;
  /** The ledger's database, for its spans' db.system.name. */
  dialect?: Ledger['dialect'];
  /** Consumer group shared by every gateway replica. */
  group?: string;
  /** Unique per process (e.g. `<hostname>-<pid>-<random>`); a reused name inherits that PEL. */
  consumer: string;
  log: Logger;
  /** How long one XREADGROUP blocks waiting for new events. */
  blockMs?: number;
  /** Entries per read. */
  batchSize?: number;
  /**
   * After a batch smaller than batchSize, wait this long before reading again, so that status
   * changes arriving one by one are still written in batches (one transaction, one XACK). The
   * ledger then lags by up to this much. 0: read again at once.
   */
  lingerMs?: number;
  /** A pending entry idle this long belongs to a dead replica and is claimed. */
  claimIdleMs?: number;
  /** How often a running consumer looks for such entries. */
  claimEveryMs?: number;
}

export interface LedgerConsumer {
  /** Finishes the batch in hand (apply + ack), then closes the dedicated connection. */
  stop(): Promise<void>;
}

type StreamEntry = [id: string, fields: string[] | null];

const ERROR_BACKOFF_MS = 1000;

/** Creates the group if needed (from the start of the stream) and runs the loop until stop(). */
export async function startLedgerConsumer(opts: LedgerConsumerOptions): Promise<LedgerConsumer> {
  const { redis, ledger, consumer } = opts;
  const group = opts.group ?? 'ledger';
  const shardKey = opts.names.eventsKeys()[opts.shard ?? 0];
  if (shardKey === undefined) throw new RangeError(`no tasks:events shard ${opts.shard}`);
  const key: string = shardKey;
  const blockMs = opts.blockMs ?? 5000;
  const count = opts.batchSize ?? 100;
  const lingerMs = opts.lingerMs ?? 0;
  const claimIdleMs = opts.claimIdleMs ?? 60_000;
  const claimEveryMs = opts.claimEveryMs ?? Math.max(1000, Math.floor(claimIdleMs / 2));
  const log = opts.log.child({ module: 'ledger-consumer', group, consumer, stream: key });
  const applySpan = {
    kind: SpanKind.CLIENT,
    parent: ROOT_CONTEXT,
    attributes: {
      ...(opts.dialect === undefined ? {} : { [ATTR.dbSystem]: opts.dialect }),
      [ATTR.dbOperation]: 'apply_events',
      [ATTR.dbCollection]: 'tasks',
    },
  };

  let stopping = false;
  let blocked = false;
  let wake: (() => void) | undefined;

  async function ensureGroup(): Promise<void> {
    try {
      // '0', not '$': events written before the first gateway started must still reach the ledger.
      await redis.xgroup('CREATE', key, group, '0', 'MKSTREAM');
    } catch (err) {
      if (!errorMessage(err).includes('BUSYGROUP')) throw err;
    }
  }

  /**
   * One span per batch, in a trace of its own (the entries carry no trace context): how many
   * events, and whether the ledger took them.
   */
  function handle(entries: StreamEntry[]): Promise<boolean> {
    if (entries.length === 0) return Promise.resolve(true);
    if (!tracingEnabled()) return applyEntries(entries);
    return withSpan('ledger apply_events', applySpan, async (span) => {
      span?.setAttribute(ATTR.dbBatchSize, entries.length);
      const ok = await applyEntries(entries);
      if (!ok) markErrorCode(span, 'ledger_write_failed');
      return ok;
    });
  }

  /**
   * Applies in stream order, then acks everything applied with one XACK. Returns false when the
   * ledger failed: that entry and the ones after it stay pending.
   */
  async function applyEntries(entries: StreamEntry[]): Promise<boolean> {
    const events: LedgerEvent[] = [];
    for (const [id, fields] of entries) {
      // null fields: the entry was trimmed (MAXLEN ~) while pending; nothing left to apply.
      const event = fields === null ? null : decodeTaskEventsEntry(id, fields);
      if (event) events.push(event);
      else if (fields !== null) log.warn({ entryId: id }, 'ignored malformed task event');
    }
    if (events.length > 1) {
      try {
        await ledger.applyEvents(events);
        // MUST come after the ledger writes: acking first loses the events if this process dies.
        await redis.xack(key, group, ...entries.map(([id]) => id));
        return true;
      } catch (err) {
        log.warn({ err, events: events.length }, 'batched ledger write failed; applying one by one');
      }
    }
    return handleOneByOne(entries);
  }

  async function handleOneByOne(entries: StreamEntry[]): Promise<boolean> {
    const done: string[] = [];
    let ok = true;
    for (const [id, fields] of entries) {
      const event = fields === null ? null : decodeTaskEventsEntry(id, fields);
      if (event !== null) {
        try {
          await ledger.applyEvent(event);
        } catch (err) {
          log.error({ err, entryId: id, taskId: event.taskId }, 'ledger write failed; event left pending');
          ok = false;
          break;
        }
      }
      done.push(id);
    }
    // MUST come after the ledger writes: acking first loses the events if this process dies.
    if (done.length > 0) await redis.xack(key, group, ...done);
    return ok;
  }

  /** Re-reads this consumer's own pending entries (id 0): after a restart or a failed write. */
  async function drainOwnPending(): Promise<boolean> {
    let from = '0';
    for (;;) {
      const res = await redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, from);
      const entries = streamEntries(res);
      if (entries.length === 0) return true;
      if (!(await handle(entries))) return false;
      from = entries.at(-1)?.[0] ?? from;
    }
  }

  /** Takes over entries that another (dead) consumer read but never acked. */
  async function claimAbandoned(): Promise<boolean> {
    let start = '0-0';
    do {
      const res = (await redis.xautoclaim(key, group, consumer, claimIdleMs, start, 'COUNT', count)) as [
        string,
        StreamEntry[],
        string[]?,
      ];
      start = res[0];
      const entries = res[1] ?? [];
      if (entries.length > 0) log.info({ claimed: entries.length }, 'claimed events of a dead consumer');
      if (!(await handle(entries))) return false;
      // Entries deleted by trimming are removed from the PEL by XAUTOCLAIM itself (Redis 7).
    } while (start !== '0-0' && !stopping);
    return true;
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async function run(): Promise<void> {
    let pendingDirty = true; // on start: this consumer name may own entries from a previous run
    let nextClaim = 0;
    let lastError = '';
    while (!stopping) {
      try {
        if (pendingDirty) pendingDirty = !(await drainOwnPending());
        if (!pendingDirty && Date.now() >= nextClaim) {
          pendingDirty = !(await claimAbandoned());
          nextClaim = Date.now() + claimEveryMs;
        }
        if (pendingDirty) {
          await sleep(ERROR_BACKOFF_MS);
          continue;
        }
        if (stopping) break; // MUST be checked here: stop() only aborts a read already blocked
        blocked = true;
        const res = await redis.xreadgroup(
          'GROUP',
          group,
          consumer,
          'COUNT',
          count,
          'BLOCK',
          Math.max(1, Math.min(blockMs, Math.max(1, nextClaim - Date.now()))),
          'STREAMS',
          key,
          '>',
        );
        blocked = false;
        if (stopping && res === null) break;
        const entries = streamEntries(res);
        pendingDirty = !(await handle(entries));
        if (lingerMs > 0 && entries.length > 0 && entries.length < count && !pendingDirty)
          await sleep(lingerMs);
        if (lastError !== '') log.info('ledger consumer recovered');
        lastError = '';
      } catch (err) {
        blocked = false;
        if (stopping) break;
        const message = errorMessage(err);
        if (message !== lastError) log.error({ err }, 'ledger consumer read failed; retrying');
        lastError = message;
        // The stream key (and with it the group) was deleted: recreate both.
        if (message.includes('NOGROUP')) await ensureGroup().catch(() => undefined);
        pendingDirty = true;
        await sleep(ERROR_BACKOFF_MS);
      }
    }
  }

  await ensureGroup();
  const done = run();
  log.info({ stream: key }, 'ledger consumer started');

  return {
    async stop() {
      stopping = true;
      wake?.();
      // A blocked XREADGROUP would hold shutdown for up to blockMs; dropping the dedicated
      // connection aborts it. Entries delivered to that read stay in our PEL and are claimed later.
      if (blocked) redis.disconnect();
      await done;
      await closeRedis(redis);
      log.info('ledger consumer stopped');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** `[[key, [[id, fields|null], …]]]` from XREADGROUP (null when the BLOCK timed out). */
function streamEntries(res: unknown): StreamEntry[] {
  if (!Array.isArray(res)) return [];
  const out: StreamEntry[] = [];
  for (const stream of res) {
    const entries = Array.isArray(stream) ? stream[1] : undefined;
    if (!Array.isArray(entries)) continue;
    for (const e of entries) {
      if (Array.isArray(e) && typeof e[0] === 'string') out.push([e[0], Array.isArray(e[1]) ? e[1] : null]);
    }
  }
  return out;
}
