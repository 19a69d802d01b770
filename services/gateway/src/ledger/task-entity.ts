// The `tasks` table of the ledger (docs/gateway.md): one row per task, kept after Redis forgets it.
// Column names are snake_case (UnderscoreNamingStrategy). Any change here needs a new migration
// for BOTH dialects in ./migrations/; the ledger test fails when entity and migrations disagree.
// Leaf module: imports only @mikro-orm/core.
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import type { TaskStatus } from '@neuroagent/contracts';

export const TaskRow = defineEntity({
  name: 'TaskRow',
  tableName: 'tasks',
  properties: {
    // varchar, not a PostgreSQL `uuid`: the gateway mints UUIDv7 ids, but a task replayed with the
    // NATS CLI may carry any id matching TASK_ID_PATTERN (≤ 64 chars).
    id: p.string().length(64).primary(),
    /** The submitter (the JWT `sub`, at most 255 characters); '' only when the first event of a task published outside the gateway named none. */
    owner: p.string().length(255),
    queue: p.string().length(64),
    task: p.string().length(128),
    status: p.string().length(16).$type<TaskStatus>(),
    submittedAt: p.datetime(),
    startedAt: p.datetime().nullable(),
    finishedAt: p.datetime().nullable(),
    attempts: p.integer().default(0),
    errorCode: p.string().length(64).nullable(),
    tokenConsumption: p.json<Record<string, unknown>>().nullable(),
    storageIds: p.json<string[]>().defaultRaw(`'[]'`),
    /** sha256 hex of the canonical input JSON; '' when unknown. */
    inputDigest: p.string().length(64),
    updatedAt: p.datetime(),
  },
  indexes: [
    // GET /tasks: newest first, keyset cursor on (submitted_at, id).
    {
      name: 'tasks_owner_submitted_idx',
      columns: [{ name: 'owner' }, { name: 'submitted_at', sort: 'DESC' }, { name: 'id', sort: 'DESC' }],
    },
    { name: 'tasks_owner_status_idx', properties: ['owner', 'status'] },
    { name: 'tasks_owner_queue_idx', properties: ['owner', 'queue'] },
    // GET /admin/tasks: every owner, newest first, the same keyset cursor.
    {
      name: 'tasks_submitted_idx',
      columns: [
        { name: 'submitted_at', sort: 'DESC' },
        { name: 'id', sort: 'DESC' },
      ],
    },
    // GET /admin/queues: the tasks of a queue that finished within the last minute and hour.
    { name: 'tasks_queue_finished_idx', properties: ['queue', 'finishedAt'] },
  ],
});
export type TaskRow = InferEntity<typeof TaskRow>;
