// The task ledger (docs/gateway.md): a durable row per task in SQLite (embedded default) or PostgreSQL,
// written at submit by the gateway and kept current from the `tasks:events` stream. Every
// operation runs on its own fork of the EntityManager (never the global EM), and every status
// change is ONE conditional UPDATE, so two gateway replicas applying events of the same task at
// once cannot move it backwards. Never imports Koa, NATS or Redis.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  type EntityManager,
  type FilterQuery,
  type MigrationObject,
  MikroORM,
  UniqueConstraintViolationException,
} from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { isTaskStatus, isTerminal, type TaskEventsEntry, type TaskStatus } from '@neuroagent/contracts';
import { type Logger, ValidationError } from '@neuroagent/platform';
import { AuditRow } from './audit-entity.ts';
import { POSTGRESQL_MIGRATIONS, SQLITE_MIGRATIONS } from './migrations/index.ts';
import { type DbSettings, dbTarget } from './settings.ts';
import { createSqliteTaskWrites, type SqliteDatabase, type SqliteTaskWrites } from './sqlite-task-writes.ts';
import { TaskRow } from './task-entity.ts';
import { MessageRow, ThreadRow, TurnRow } from './thread-entities.ts';

// ---------------------------------------------------------------------------------------------
// Public shapes
// ---------------------------------------------------------------------------------------------

export interface SubmittedTask {
  id: string;
  owner: string;
  queue: string;
  task: string;
  /** ISO-8601 string or Date. */
  submittedAt: string | Date;
  /** sha256 hex of the canonical input JSON (see inputDigest()). */
  inputDigest: string;
}

/**
 * One status change, as decoded from `tasks:events` (decodeTaskEventsEntry). The task name, owner
 * and submit time are used only to create the row of a task the gateway never recorded; the
 * record a terminal entry may carry is the completion watch's, not the ledger's.
 */
export type LedgerEvent = Omit<TaskEventsEntry, 'record'>;

/**
 * - `applied`: the row changed;
 * - `created`: the task was unknown (submitted outside the gateway: `npm run replay`, a NATS CLI
 *   publish, or an event that overtook its submit): a row was inserted with the owner, queue, task
 *   and submit time the event carries, so the owner's `GET /tasks` lists it; with owner '' when the
 *   event has none (an older worker, or a poison message without a userId), and then no user sees it;
 * - `ignored`: a duplicate, or a stale event (e.g. `running` after `succeeded`).
 */
export type ApplyResult = 'applied' | 'created' | 'ignored';

/** A ledger row as served by the API (snake_case, ISO-8601 times). */
export interface LedgerTask {
  id: string;
  owner: string;
  queue: string;
  task: string;
  status: TaskStatus;
  submitted_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempts: number;
  error_code: string | null;
  token_consumption: Record<string, unknown> | null;
  storage_ids: string[];
  input_digest: string;
  updated_at: string;
}

export interface ListOptions {
  status?: TaskStatus | undefined;
  queue?: string | undefined;
  /** 1..100, default 20. */
  limit?: number | undefined;
  /** `next_cursor` of the previous page. */
  cursor?: string | undefined;
}

/** GET /admin/tasks: every owner unless `owner` is set. */
export interface SearchOptions extends ListOptions {
  owner?: string | undefined;
  task?: string | undefined;
  errorCode?: string | undefined;
  /** Submitted at or after. */
  since?: Date | undefined;
  /** Submitted before. */
  until?: Date | undefined;
}

/** Tasks of one queue that finished since a time, by terminal status. */
export interface FinishedCounts {
  succeeded: number;
  failed: number;
  cancelled: number;
}

export interface LedgerPage {
  items: LedgerTask[];
  /** null on the last page. */
  next_cursor: string | null;
}

export interface Ledger {
  readonly dialect: 'sqlite' | 'postgresql';
  recordSubmitted(task: SubmittedTask): Promise<void>;
  /** Several submissions in one INSERT; the same outcome as recordSubmitted() on each. */
  recordSubmittedMany(tasks: SubmittedTask[]): Promise<void>;
  applyEvent(event: LedgerEvent): Promise<ApplyResult>;
  /** Events in stream order, in one transaction; the same outcome as applyEvent() on each. */
  applyEvents(events: LedgerEvent[]): Promise<ApplyResult[]>;
  get(id: string): Promise<LedgerTask | null>;
  list(owner: string, options?: ListOptions): Promise<LedgerPage>;
  search(options: SearchOptions): Promise<LedgerPage>;
  finishedCounts(queue: string, since: Date): Promise<FinishedCounts>;
  /** The underlying ORM, for tests and health checks; do not use its global EntityManager. */
  readonly orm: MikroORM;
  close(): Promise<void>;
}

export const LIST_MAX_LIMIT = 100;
export const LIST_DEFAULT_LIMIT = 20;

// ---------------------------------------------------------------------------------------------
// Input digest
// ---------------------------------------------------------------------------------------------

/** JSON with object keys sorted at every level, so equal inputs always hash the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? 'null';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

export function inputDigest(input: unknown): string {
  return createHash('sha256').update(canonicalJson(input)).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Cursor: base64url of `<submitted_at ISO>|<id>`; opaque to clients.
// ---------------------------------------------------------------------------------------------

export function encodeCursor(submittedAt: Date, id: string): string {
  return Buffer.from(`${submittedAt.toISOString()}|${id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { submittedAt: Date; id: string } {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8');
  const sep = raw.indexOf('|');
  const submittedAt = new Date(sep > 0 ? raw.slice(0, sep) : Number.NaN);
  const id = raw.slice(sep + 1);
  if (sep <= 0 || Number.isNaN(submittedAt.getTime()) || id === '') {
    throw new ValidationError('invalid cursor', [{ path: '/cursor', message: 'not a cursor from this API' }]);
  }
  return { submittedAt, id };
}

// ---------------------------------------------------------------------------------------------
// openLedger
// ---------------------------------------------------------------------------------------------

const NOT_TERMINAL: TaskStatus[] = ['pending', 'running'];

/** Connects, creates the SQLite folder if needed and applies pending migrations. */
export async function openLedger(
  settings: Pick<DbSettings, 'url' | 'debug'> &
    Partial<Pick<DbSettings, 'sqlite_synchronous' | 'sqlite_transaction_wait_ms'>>,
  log: Logger,
): Promise<Ledger> {
  const target = dbTarget(settings);
  const ormLog = log.child({ module: 'ledger' });
  const common = {
    entities: [TaskRow, AuditRow, ThreadRow, TurnRow, MessageRow],
    extensions: [Migrator],
    debug: settings.debug,
    colors: false,
    logger: (message: string) => ormLog.debug({ orm: message }, 'orm'),
    // MUST stay false: with true, MikroORM may create a missing database AND its schema from the
    // entity metadata, bypassing the checked-in migrations.
    ensureDatabase: false,
    // Every call forks; a use of the global EM is a bug and must throw.
    allowGlobalContext: false,
    migrations: {
      migrationsList: [] as MigrationObject[],
      snapshot: false,
      snapshotOnMigrate: false,
      silent: true,
      transactional: true,
      allOrNothing: true,
    },
  };

  let orm: MikroORM;
  // SQLite: the task writes of the hot path run as prepared statements below the ORM.
  let sqliteWrites: SqliteTaskWrites | undefined;
  if (target.dialect === 'sqlite') {
    const { SqliteDriver } = await import('@mikro-orm/sqlite');
    if (target.path !== ':memory:') await mkdir(dirname(resolve(target.path)), { recursive: true });
    orm = await MikroORM.init({
      ...common,
      driver: SqliteDriver,
      dbName: target.path,
      migrations: { ...common.migrations, migrationsList: SQLITE_MIGRATIONS },
    });
    if (target.path !== ':memory:') {
      // The default rollback journal syncs the disk on every commit: about 1 ms with the event loop
      // blocked (better-sqlite3 is synchronous), which was most of the gateway's CPU per task. WAL
      // lets commits append; `synchronous` says when they reach the disk (see the setting).
      const connection = orm.em.getConnection();
      await connection.execute('PRAGMA journal_mode = WAL');
      const synchronous = settings.sqlite_synchronous ?? 'normal';
      await connection.execute(`PRAGMA synchronous = ${synchronous.toUpperCase()}`);
    }
    const native = orm.em.getConnection() as unknown as { getNativeClient(): Promise<SqliteDatabase> };
    sqliteWrites = createSqliteTaskWrites(await native.getNativeClient(), {
      maxWaitMs: settings.sqlite_transaction_wait_ms ?? 5000,
    });
  } else {
    const { PostgreSqlDriver } = await import('@mikro-orm/postgresql');
    orm = await MikroORM.init({
      ...common,
      driver: PostgreSqlDriver,
      clientUrl: target.url,
      migrations: { ...common.migrations, migrationsList: POSTGRESQL_MIGRATIONS },
    });
  }

  try {
    const applied = await orm.migrator.up();
    if (applied.length > 0) {
      ormLog.info({ dialect: target.dialect, migrations: applied.map((m) => m.name) }, 'ledger migrated');
    }
  } catch (err) {
    await orm.close(true).catch(() => undefined);
    throw err;
  }

  const fork = (): EntityManager => orm.em.fork();

  async function search(options: SearchOptions): Promise<LedgerPage> {
    const limit = Math.min(Math.max(Math.trunc(options.limit ?? LIST_DEFAULT_LIMIT), 1), LIST_MAX_LIMIT);
    const where: FilterQuery<TaskRow> = {};
    if (options.owner !== undefined) where.owner = options.owner;
    if (options.status !== undefined) where.status = options.status;
    if (options.queue !== undefined) where.queue = options.queue;
    if (options.task !== undefined) where.task = options.task;
    if (options.errorCode !== undefined) where.errorCode = options.errorCode;
    if (options.since !== undefined || options.until !== undefined) {
      where.submittedAt = {
        ...(options.since === undefined ? {} : { $gte: options.since }),
        ...(options.until === undefined ? {} : { $lt: options.until }),
      };
    }
    if (options.cursor !== undefined && options.cursor !== '') {
      const c = decodeCursor(options.cursor);
      // Keyset pagination on (submitted_at DESC, id DESC): tasks_owner_submitted_idx for one
      // owner, tasks_submitted_idx across owners.
      where.$and = [
        {
          $or: [{ submittedAt: { $lt: c.submittedAt } }, { submittedAt: c.submittedAt, id: { $lt: c.id } }],
        },
      ];
    }
    const rows = await fork().find(TaskRow, where, {
      orderBy: [{ submittedAt: 'desc' }, { id: 'desc' }],
      limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map(toLedgerTask),
      next_cursor: rows.length > limit && last ? encodeCursor(last.submittedAt, last.id) : null,
    };
  }

  /**
   * `retry`: on a unique-key race, apply the event to the row that won. Not inside a transaction:
   * PostgreSQL aborts the whole transaction on the failed INSERT (applyEvents() then falls back).
   */
  async function applyOne(em: EntityManager, event: LedgerEvent, retry: boolean): Promise<ApplyResult> {
    const at = toDate(event.ts);
    const now = new Date();
    const id = event.taskId;
    let changed = 0;

    if (event.status === 'running') {
      const attempt = event.attempt ?? 1;
      // Monotonic: only from pending/running, and never back to an older attempt.
      changed = await em.nativeUpdate(
        TaskRow,
        { id, status: { $in: NOT_TERMINAL }, attempts: { $lte: attempt } },
        { status: 'running', startedAt: at, attempts: attempt, updatedAt: now },
      );
    } else if (isTerminal(event.status)) {
      // First terminal status wins; a duplicate or a different late terminal event is ignored.
      changed = await em.nativeUpdate(
        TaskRow,
        { id, status: { $in: NOT_TERMINAL } },
        {
          status: event.status,
          finishedAt: at,
          errorCode: event.code ?? null,
          updatedAt: now,
          ...(event.tokenConsumption === undefined ? {} : { tokenConsumption: event.tokenConsumption }),
          ...(event.storageIds === undefined ? {} : { storageIds: event.storageIds }),
        },
      );
      if (changed > 0 && event.attempt !== undefined) {
        await em.nativeUpdate(TaskRow, { id, attempts: { $lt: event.attempt } }, { attempts: event.attempt });
      }
    }
    if (changed > 0) return 'applied';
    if ((await em.count(TaskRow, { id })) > 0) return 'ignored';

    // Unknown id: the task was submitted outside the gateway (`npm run replay`, NATS CLI) or its
    // submit row is not written yet. The worker's event names the owner (the envelope's userId, the
    // same one task:{id}:meta holds), so the row is the owner's at once; without one it stays under
    // owner ''. recordSubmitted() completes a row created here (it has no input digest).
    try {
      await em.insert(TaskRow, {
        id,
        owner: event.owner ?? '',
        queue: event.queue ?? '',
        task: event.task ?? '',
        status: event.status,
        submittedAt: event.submittedAt === undefined ? at : toDate(event.submittedAt),
        startedAt: event.status === 'running' ? at : null,
        finishedAt: isTerminal(event.status) ? at : null,
        attempts: event.attempt ?? (event.status === 'running' ? 1 : 0),
        errorCode: isTerminal(event.status) ? (event.code ?? null) : null,
        tokenConsumption: event.tokenConsumption ?? null,
        storageIds: event.storageIds ?? [],
        inputDigest: '',
        updatedAt: now,
      });
      return 'created';
    } catch (err) {
      // Another replica (or recordSubmitted) inserted it first: apply the event to that row.
      if (err instanceof UniqueConstraintViolationException && retry) return applyOne(fork(), event, false);
      throw err;
    }
  }

  const applyEvent = async (event: LedgerEvent): Promise<ApplyResult> => {
    if (sqliteWrites) return (await sqliteWrites.applyEvents([event]))[0] ?? 'ignored';
    return applyOne(fork(), event, true);
  };

  /**
   * A task's `running` event and its terminal event in one UPDATE, under both events' conditions
   * (not yet final, not an older attempt), so the row ends exactly as applying them in turn would.
   * False when the conditions do not hold (or the row is unknown): then they are applied in turn.
   */
  async function applyStartAndEnd(em: EntityManager, start: LedgerEvent, end: LedgerEvent): Promise<boolean> {
    const attempt = start.attempt ?? 1;
    const changed = await em.nativeUpdate(
      TaskRow,
      { id: start.taskId, status: { $in: NOT_TERMINAL }, attempts: { $lte: attempt } },
      {
        status: end.status,
        startedAt: toDate(start.ts),
        finishedAt: toDate(end.ts),
        attempts: Math.max(attempt, end.attempt ?? attempt),
        errorCode: end.code ?? null,
        updatedAt: new Date(),
        ...(end.tokenConsumption === undefined ? {} : { tokenConsumption: end.tokenConsumption }),
        ...(end.storageIds === undefined ? {} : { storageIds: end.storageIds }),
      },
    );
    return changed > 0;
  }

  async function recordSubmitted(task: SubmittedTask): Promise<void> {
    if (sqliteWrites) return sqliteWrites.recordSubmittedMany([task]);
    const em = fork();
    const now = new Date();
    try {
      await em.insert(TaskRow, submittedRow(task, now));
    } catch (err) {
      if (!(err instanceof UniqueConstraintViolationException)) throw err;
      // An event got here first and created the row (no input digest): complete it, keep its
      // status. A row with a digest is a retried submit and stays as it is.
      await em.nativeUpdate(
        TaskRow,
        { id: task.id, inputDigest: '' },
        {
          owner: task.owner,
          queue: task.queue,
          task: task.task,
          submittedAt: toDate(task.submittedAt),
          inputDigest: task.inputDigest,
          updatedAt: now,
        },
      );
    }
  }

  function submittedRow(task: SubmittedTask, now: Date) {
    return {
      id: task.id,
      owner: task.owner,
      queue: task.queue,
      task: task.task,
      status: 'pending' as TaskStatus,
      submittedAt: toDate(task.submittedAt),
      startedAt: null,
      finishedAt: null,
      attempts: 0,
      errorCode: null,
      tokenConsumption: null,
      storageIds: [],
      inputDigest: task.inputDigest,
      updatedAt: now,
    };
  }

  return {
    dialect: target.dialect,
    orm,

    recordSubmitted,

    async recordSubmittedMany(tasks) {
      if (sqliteWrites) return sqliteWrites.recordSubmittedMany(tasks);
      if (tasks.length === 1 && tasks[0]) return recordSubmitted(tasks[0]);
      const now = new Date();
      try {
        await fork().insertMany(
          TaskRow,
          tasks.map((t) => submittedRow(t, now)),
        );
      } catch (err) {
        // A row that already exists (an event was first) fails the whole statement: one by one.
        if (!(err instanceof UniqueConstraintViolationException)) throw err;
        for (const t of tasks) await recordSubmitted(t);
      }
    },

    applyEvent,
    async applyEvents(events) {
      if (sqliteWrites) return sqliteWrites.applyEvents(events);
      if (events.length <= 1) return Promise.all(events.map(applyEvent));
      try {
        // One commit for the batch instead of one per event.
        return await fork().transactional(async (em) => {
          const results: ApplyResult[] = new Array(events.length);
          const merged = pairStartsWithEnds(events);
          for (const [i, e] of events.entries()) {
            if (results[i] !== undefined) continue; // the end of a pair applied with its start
            const end = merged.get(i);
            if (end !== undefined && (await applyStartAndEnd(em, e, events[end] as LedgerEvent))) {
              results[i] = 'applied';
              results[end] = 'applied';
              continue;
            }
            results[i] = await applyOne(em, e, false);
          }
          return results;
        });
      } catch {
        // Rolled back as a whole (a unique-key race, most likely): every event is idempotent and
        // monotonic, so applying them again one by one gives the same ledger.
        const results: ApplyResult[] = [];
        for (const e of events) results.push(await applyEvent(e));
        return results;
      }
    },

    async get(id) {
      const row = await fork().findOne(TaskRow, { id });
      return row === null ? null : toLedgerTask(row);
    },

    list(owner, options = {}) {
      return search({ ...options, owner });
    },

    search,

    async finishedCounts(queue, since) {
      const em = fork();
      const count = (status: TaskStatus) => em.count(TaskRow, { queue, status, finishedAt: { $gte: since } });
      const [succeeded, failed, cancelled] = await Promise.all([
        count('succeeded'),
        count('failed'),
        count('cancelled'),
      ]);
      return { succeeded, failed, cancelled };
    },

    async close() {
      await orm.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function toDate(value: string | Date): Date {
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

function toLedgerTask(row: TaskRow): LedgerTask {
  return {
    id: row.id,
    owner: row.owner,
    queue: row.queue,
    task: row.task,
    status: isTaskStatus(row.status) ? row.status : 'pending',
    submitted_at: row.submittedAt.toISOString(),
    started_at: row.startedAt?.toISOString() ?? null,
    finished_at: row.finishedAt?.toISOString() ?? null,
    attempts: row.attempts,
    error_code: row.errorCode ?? null,
    token_consumption: row.tokenConsumption ?? null,
    storage_ids: row.storageIds ?? [],
    input_digest: row.inputDigest,
    updated_at: row.updatedAt.toISOString(),
  };
}

/**
 * Index of each `running` event → index of the same task's next event, when that next event is
 * terminal: the two can be applied as one UPDATE (a worker writes them milliseconds apart, so
 * under load they usually arrive in the same batch).
 */
export function pairStartsWithEnds(events: LedgerEvent[]): Map<number, number> {
  const pairs = new Map<number, number>();
  const openStart = new Map<string, number>();
  for (const [i, e] of events.entries()) {
    const start = openStart.get(e.taskId);
    openStart.delete(e.taskId);
    if (e.status === 'running') openStart.set(e.taskId, i);
    else if (start !== undefined && isTerminal(e.status)) pairs.set(start, i);
  }
  return pairs;
}
