// The ledger's hot writes on SQLite, below the ORM: the submit INSERT and the status UPDATEs from
// tasks:events, as statements prepared once on the ORM's own better-sqlite3 connection. Why: the
// ORM builds, compiles and prepares every statement anew, which was about a third of the gateway's
// CPU per task; a prepared statement runs in microseconds. The rows are the ones the ORM writes
// (times as epoch milliseconds, JSON as text), and the conditions the same: a status only moves
// forward (see ledger.ts).
//
// The connection is shared with the ORM, whose transactions span awaits: a statement run while
// one is open would join it (and roll back with it). So a write first waits, without blocking,
// until the connection is outside any transaction, then runs whole and synchronously in its own.
import { setTimeout as sleep } from 'node:timers/promises';
import { isTerminal } from '@neuroagent/contracts';
import { type ApplyResult, type LedgerEvent, pairStartsWithEnds, type SubmittedTask } from './ledger.ts';

/** The part of a better-sqlite3 Database these writes use. */
export interface SqliteDatabase {
  readonly inTransaction: boolean;
  prepare(sql: string): SqliteStatement;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
}

export interface SqliteStatement {
  run(params: Record<string, unknown>): { changes: number };
  get(params: Record<string, unknown>): unknown;
}

export class LedgerBusyError extends Error {
  readonly code = 'ledger_busy';
  constructor(waitedMs: number) {
    super(`the SQLite ledger stayed inside another transaction for ${waitedMs} ms`);
    this.name = 'LedgerBusyError';
  }
}

export interface SqliteTaskWrites {
  recordSubmittedMany(tasks: SubmittedTask[]): Promise<void>;
  applyEvents(events: LedgerEvent[]): Promise<ApplyResult[]>;
}

const NOT_TERMINAL = `status in ('pending', 'running')`;

// A value the event does not carry keeps the column as it is (`set` is 0), as the ORM's update
// left such a column out.
const KEEP_UNLESS_SET = `
  token_consumption = case when @setTokens then @tokens else token_consumption end,
  storage_ids = case when @setStorage then @storage else storage_ids end`;

const SQL = {
  // An event that got here first created the row without an input digest: complete it and keep its
  // status. A row with a digest is a retried submit and stays as it is.
  insertSubmitted: `insert into tasks (id, owner, queue, task, status, submitted_at, started_at,
      finished_at, attempts, error_code, token_consumption, storage_ids, input_digest, updated_at)
    values (@id, @owner, @queue, @task, 'pending', @submittedAt, null, null, 0, null, null, '[]',
      @inputDigest, @now)
    on conflict (id) do update set owner = excluded.owner, queue = excluded.queue,
      task = excluded.task, submitted_at = excluded.submitted_at,
      input_digest = excluded.input_digest, updated_at = excluded.updated_at
    where tasks.input_digest = ''`,
  // Monotonic: only from pending/running, and never back to an older attempt.
  start: `update tasks set status = 'running', started_at = @at, attempts = @attempt, updated_at = @now
    where id = @id and ${NOT_TERMINAL} and attempts <= @attempt`,
  // First terminal status wins; the attempt count only grows.
  end: `update tasks set status = @status, finished_at = @at, error_code = @code, updated_at = @now,
      ${KEEP_UNLESS_SET},
      attempts = case when @attempt is not null and @attempt > attempts then @attempt else attempts end
    where id = @id and ${NOT_TERMINAL}`,
  startAndEnd: `update tasks set status = @status, started_at = @startedAt, finished_at = @at,
      attempts = @attempts, error_code = @code, updated_at = @now, ${KEEP_UNLESS_SET}
    where id = @id and ${NOT_TERMINAL} and attempts <= @startAttempt`,
  exists: 'select 1 as found from tasks where id = @id',
  insertUnknown: `insert into tasks (id, owner, queue, task, status, submitted_at, started_at,
      finished_at, attempts, error_code, token_consumption, storage_ids, input_digest, updated_at)
    values (@id, @owner, @queue, @task, @status, @submittedAt, @startedAt, @finishedAt, @attempts,
      @code, @tokens, @storage, '', @now)`,
};

type Statements = { [K in keyof typeof SQL]: SqliteStatement };

/** Epoch milliseconds, as the ORM stores a datetime on SQLite; an unreadable time is now. */
function ms(value: string | Date, now: number): number {
  const t = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(t) ? now : t;
}

function carried(event: LedgerEvent) {
  return {
    setTokens: event.tokenConsumption === undefined ? 0 : 1,
    tokens: event.tokenConsumption === undefined ? null : JSON.stringify(event.tokenConsumption),
    setStorage: event.storageIds === undefined ? 0 : 1,
    storage: event.storageIds === undefined ? null : JSON.stringify(event.storageIds),
  };
}

export function createSqliteTaskWrites(db: SqliteDatabase, opts: { maxWaitMs: number }): SqliteTaskWrites {
  let prepared: Statements | undefined;
  const statements = (): Statements => {
    prepared ??= Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Statements;
    return prepared;
  };

  /** Resolves once no ORM transaction is open on the shared connection. */
  async function outsideTransactions(): Promise<void> {
    const started = performance.now();
    while (db.inTransaction) {
      const waited = performance.now() - started;
      if (waited > opts.maxWaitMs) throw new LedgerBusyError(Math.round(waited));
      await sleep(1);
    }
  }

  function applyOne(s: Statements, event: LedgerEvent, now: number): ApplyResult {
    const id = event.taskId;
    const at = ms(event.ts, now);
    let changed = 0;
    if (event.status === 'running') {
      changed = s.start.run({ id, at, attempt: event.attempt ?? 1, now }).changes;
    } else if (isTerminal(event.status)) {
      changed = s.end.run({
        id,
        at,
        now,
        status: event.status,
        code: event.code ?? null,
        attempt: event.attempt ?? null,
        ...carried(event),
      }).changes;
    }
    if (changed > 0) return 'applied';
    if (s.exists.get({ id }) !== undefined) return 'ignored';
    // Unknown id: submitted outside the gateway, or its submit row is not written yet (see
    // ApplyResult). The submit INSERT completes this row later.
    const { tokens, storage } = carried(event);
    s.insertUnknown.run({
      id,
      owner: event.owner ?? '',
      queue: event.queue ?? '',
      task: event.task ?? '',
      status: event.status,
      submittedAt: event.submittedAt === undefined ? at : ms(event.submittedAt, now),
      startedAt: event.status === 'running' ? at : null,
      finishedAt: isTerminal(event.status) ? at : null,
      attempts: event.attempt ?? (event.status === 'running' ? 1 : 0),
      code: isTerminal(event.status) ? (event.code ?? null) : null,
      tokens,
      storage: storage ?? '[]',
      now,
    });
    return 'created';
  }

  const applyAll = (events: LedgerEvent[]): ApplyResult[] => {
    const s = statements();
    const now = Date.now();
    const results: ApplyResult[] = new Array(events.length);
    const pairs = pairStartsWithEnds(events);
    for (const [i, e] of events.entries()) {
      if (results[i] !== undefined) continue; // the end of a pair, applied with its start
      const j = pairs.get(i);
      const end = j === undefined ? undefined : events[j];
      if (j !== undefined && end !== undefined) {
        const startAttempt = e.attempt ?? 1;
        const changed = s.startAndEnd.run({
          id: e.taskId,
          status: end.status,
          startedAt: ms(e.ts, now),
          at: ms(end.ts, now),
          attempts: Math.max(startAttempt, end.attempt ?? startAttempt),
          startAttempt,
          code: end.code ?? null,
          now,
          ...carried(end),
        }).changes;
        if (changed > 0) {
          results[i] = 'applied';
          results[j] = 'applied';
          continue;
        }
      }
      results[i] = applyOne(s, e, now);
    }
    return results;
  };

  const insertAll = (tasks: SubmittedTask[]): void => {
    const s = statements();
    const now = Date.now();
    for (const t of tasks) {
      s.insertSubmitted.run({
        id: t.id,
        owner: t.owner,
        queue: t.queue,
        task: t.task,
        submittedAt: ms(t.submittedAt, now),
        inputDigest: t.inputDigest,
        now,
      });
    }
  };

  // Built lazily too: better-sqlite3 wraps each function in BEGIN/COMMIT (ROLLBACK on a throw).
  let applyTx: ((events: LedgerEvent[]) => ApplyResult[]) | undefined;
  let insertTx: ((tasks: SubmittedTask[]) => void) | undefined;

  return {
    async recordSubmittedMany(tasks) {
      if (tasks.length === 0) return;
      await outsideTransactions();
      insertTx ??= db.transaction(insertAll);
      insertTx(tasks);
    },
    async applyEvents(events) {
      if (events.length === 0) return [];
      await outsideTransactions();
      applyTx ??= db.transaction(applyAll);
      return applyTx(events);
    },
  };
}
