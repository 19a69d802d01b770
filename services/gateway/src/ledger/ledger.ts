// The task ledger (docs/gateway.md): a durable row per task in SQLite (embedded default) or PostgreSQL,
// written at submit by the gateway and kept current from the `tasks:events` stream. The writes of
// the hot path (the submit INSERT, the status UPDATEs) run as prepared statements below the ORM
// (task-write-plan.ts and one module per dialect); everything else runs on its own fork of the
// EntityManager (never the global EM). Every status change is ONE conditional UPDATE, so two
// gateway replicas applying events of the same task at once cannot move it backwards. Never
// imports Koa, NATS or Redis.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type EntityManager, type FilterQuery, type MigrationObject, MikroORM } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { isTaskStatus, type TaskStatus } from '@neuroagent/contracts';
import { type Logger, ValidationError } from '@neuroagent/platform';
import { AuditRow } from './audit-entity.ts';
import { POSTGRESQL_MIGRATIONS, SQLITE_MIGRATIONS } from './migrations/index.ts';
import { createPostgresTaskWrites, type PgPool } from './postgres-task-writes.ts';
import { type DbSettings, dbTarget } from './settings.ts';
import { createSqliteTaskWrites, type SqliteDatabase } from './sqlite-task-writes.ts';
import type { ApplyResult, LedgerEvent, SubmittedTask } from './task-changes.ts';
import { TaskRow } from './task-entity.ts';
import type { TaskWrites } from './task-write-plan.ts';
import { MessageRow, ThreadRow, TurnRow } from './thread-entities.ts';

// ---------------------------------------------------------------------------------------------
// Public shapes
// ---------------------------------------------------------------------------------------------

export {
  type ApplyResult,
  type LedgerEvent,
  pairStartsWithEnds,
  type SubmittedTask,
} from './task-changes.ts';

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
  // The task writes of the hot path, as prepared statements on the ORM's own connection(s).
  let writes: TaskWrites;
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
    writes = createSqliteTaskWrites(await native.getNativeClient(), {
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
    const native = orm.em.getConnection() as unknown as { getNativeClient(): Promise<PgPool> };
    writes = createPostgresTaskWrites(await native.getNativeClient());
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

  const applyEvent = async (event: LedgerEvent): Promise<ApplyResult> =>
    (await writes.applyEvents([event]))[0] ?? 'ignored';

  return {
    dialect: target.dialect,
    orm,

    recordSubmitted: (task) => writes.recordSubmittedMany([task]),
    recordSubmittedMany: (tasks) => writes.recordSubmittedMany(tasks),
    applyEvent,
    applyEvents: (events) => writes.applyEvents(events),

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
