// The ledger's hot writes on PostgreSQL, below the ORM: the submit INSERT and the status UPDATEs
// from tasks:events as named statements on the ORM's own `pg` pool, so that each pooled connection
// parses and plans them once and then only binds parameters. Why: the ORM builds and compiles every
// statement anew, about a third of the gateway's CPU per task. The rows are the ones the ORM writes
// (timestamptz, jsonb), and the rules those of task-write-plan.ts. A whole batch of submissions is
// ONE INSERT (arrays, unnest), whatever its size, so one prepared statement serves every batch.
import type { ApplyResult, LedgerEvent, SubmittedTask } from './task-changes.ts';
import { applyPlan, eventTime, type PlannedStatement, runPlan, type TaskWrites } from './task-write-plan.ts';

interface QueryConfig {
  name: string;
  text: string;
  values: unknown[];
}

/** The part of a `pg` client (a pooled connection) these writes use. */
export interface PgClient {
  query(config: QueryConfig | string): Promise<{ rowCount: number | null }>;
}

/** The part of a `pg` Pool these writes use. */
export interface PgPool extends PgClient {
  connect(): Promise<PgClient & { release(err?: Error | boolean): void }>;
}

const NOT_TERMINAL = `status in ('pending', 'running')`;
const KEEP_UNLESS_SET = (set: number) => `
  token_consumption = case when $${set}::boolean then $${set + 1}::jsonb else token_consumption end,
  storage_ids = case when $${set + 2}::boolean then $${set + 3}::jsonb else storage_ids end`;

/** Each statement, and the order in which its parameters are bound. */
const STATEMENTS = {
  start: {
    text: `update tasks set status = 'running', started_at = $2, attempts = $3::int, updated_at = $4
      where id = $1 and ${NOT_TERMINAL} and attempts <= $3::int`,
    order: ['id', 'at', 'attempt', 'now'],
  },
  end: {
    text: `update tasks set status = $2, finished_at = $3, error_code = $4, updated_at = $5,
        attempts = case when $6::int is not null and $6::int > attempts then $6::int else attempts end,
        ${KEEP_UNLESS_SET(7)}
      where id = $1 and ${NOT_TERMINAL}`,
    order: ['id', 'status', 'at', 'code', 'now', 'attempt', 'setTokens', 'tokens', 'setStorage', 'storage'],
  },
  startAndEnd: {
    text: `update tasks set status = $2, started_at = $3, finished_at = $4, attempts = $5::int,
        error_code = $7, updated_at = $8, ${KEEP_UNLESS_SET(9)}
      where id = $1 and ${NOT_TERMINAL} and attempts <= $6::int`,
    order: [
      'id',
      'status',
      'startedAt',
      'at',
      'attempts',
      'startAttempt',
      'code',
      'now',
      'setTokens',
      'tokens',
      'setStorage',
      'storage',
    ],
  },
  exists: { text: 'select 1 from tasks where id = $1', order: ['id'] },
  insertUnknown: {
    text: `insert into tasks (id, owner, queue, task, status, submitted_at, started_at, finished_at,
        attempts, error_code, token_consumption, storage_ids, input_digest, updated_at)
      values ($1, $2, $3, $4, $5, $6, $7, $8, $9::int, $10, $11::jsonb, $12::jsonb, '', $13)
      on conflict (id) do nothing`,
    order: [
      'id',
      'owner',
      'queue',
      'task',
      'status',
      'submittedAt',
      'startedAt',
      'finishedAt',
      'attempts',
      'code',
      'tokens',
      'storage',
      'now',
    ],
  },
} as const satisfies Record<PlannedStatement['kind'], { text: string; order: readonly string[] }>;

// An event that got here first created the row without an input digest: complete it and keep its
// status. A row with a digest is a retried submit and stays as it is.
const INSERT_SUBMITTED = `insert into tasks (id, owner, queue, task, status, submitted_at, started_at,
    finished_at, attempts, error_code, token_consumption, storage_ids, input_digest, updated_at)
  select id, owner, queue, task, 'pending', submitted_at, null, null, 0, null, null, '[]'::jsonb,
    input_digest, $7
  from unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::timestamptz[],
    $6::varchar[]) as t(id, owner, queue, task, submitted_at, input_digest)
  on conflict (id) do update set owner = excluded.owner, queue = excluded.queue,
    task = excluded.task, submitted_at = excluded.submitted_at,
    input_digest = excluded.input_digest, updated_at = excluded.updated_at
  where tasks.input_digest = ''`;

const NAME_PREFIX = 'neuroagent_ledger_';

function query(statement: PlannedStatement): QueryConfig {
  const { text, order } = STATEMENTS[statement.kind];
  const params = statement.params as unknown as Record<string, unknown>;
  return { name: NAME_PREFIX + statement.kind, text, values: order.map((key) => params[key]) };
}

export function createPostgresTaskWrites(pool: PgPool): TaskWrites {
  const run = (client: PgClient) => async (statement: PlannedStatement) =>
    (await client.query(query(statement))).rowCount ?? 0;

  return {
    async recordSubmittedMany(tasks: SubmittedTask[]) {
      // One row per id: ON CONFLICT DO UPDATE may not touch a row twice in one statement.
      const unique = [...new Map(tasks.map((t) => [t.id, t])).values()];
      if (unique.length === 0) return;
      const now = new Date();
      await pool.query({
        name: `${NAME_PREFIX}insert_submitted`,
        text: INSERT_SUBMITTED,
        values: [
          unique.map((t) => t.id),
          unique.map((t) => t.owner),
          unique.map((t) => t.queue),
          unique.map((t) => t.task),
          unique.map((t) => eventTime(t.submittedAt, now)),
          unique.map((t) => t.inputDigest),
          now,
        ],
      });
    },

    async applyEvents(events: LedgerEvent[]): Promise<ApplyResult[]> {
      if (events.length === 0) return [];
      // One event: its statements are each conditional, no transaction needed.
      if (events.length === 1) return runPlan(applyPlan(events, new Date()), run(pool));
      const client = await pool.connect();
      try {
        await client.query('begin');
        const results = await runPlan(applyPlan(events, new Date()), run(client));
        await client.query('commit');
        client.release();
        return results;
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        // A connection that failed mid-transaction is not given back to the pool for reuse.
        client.release(err instanceof Error ? err : true);
        throw err;
      }
    },
  };
}
