// The ledger's hot writes on SQLite, below the ORM: the submit INSERT and the status UPDATEs from
// tasks:events, as statements prepared once on the ORM's own better-sqlite3 connection. Why: the
// ORM builds, compiles and prepares every statement anew, which was about a third of the gateway's
// CPU per task; a prepared statement runs in microseconds. The rows are the ones the ORM writes
// (times as epoch milliseconds, JSON as text), and the rules of task-write-plan.ts: a status only
// moves forward.
//
// The connection is shared with the ORM, whose transactions span awaits: a statement run while
// one is open would join it (and roll back with it). So a write first waits, without blocking,
// until the connection is outside any transaction, then runs whole and synchronously in its own.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplyResult, LedgerEvent, SubmittedTask } from './task-changes.ts';
import {
  applyPlan,
  eventTime,
  type PlannedStatement,
  runPlanSync,
  type TaskWrites,
} from './task-write-plan.ts';

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
      @code, @tokens, @storage, '', @now)
    on conflict (id) do nothing`,
};

type Statements = { [K in keyof typeof SQL]: SqliteStatement };

/** better-sqlite3 binds numbers, strings, bigints, buffers and null: times as epoch ms (as the ORM stores them), flags as 0/1. */
function bindable(params: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    out[k] = v instanceof Date ? v.getTime() : typeof v === 'boolean' ? (v ? 1 : 0) : v;
  }
  return out;
}

export function createSqliteTaskWrites(db: SqliteDatabase, opts: { maxWaitMs: number }): TaskWrites {
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

  function run(s: Statements, statement: PlannedStatement): number {
    if (statement.kind === 'exists') return s.exists.get(statement.params) === undefined ? 0 : 1;
    return s[statement.kind].run(bindable(statement.params)).changes;
  }

  const applyAll = (events: LedgerEvent[]): ApplyResult[] => {
    const s = statements();
    return runPlanSync(applyPlan(events, new Date()), (statement) => run(s, statement));
  };

  const insertAll = (tasks: SubmittedTask[]): void => {
    const s = statements();
    const now = new Date();
    for (const t of tasks) {
      s.insertSubmitted.run(
        bindable({
          id: t.id,
          owner: t.owner,
          queue: t.queue,
          task: t.task,
          submittedAt: eventTime(t.submittedAt, now),
          inputDigest: t.inputDigest,
          now,
        }),
      );
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
