// Bodies of the HTTP API that belong to no one task: the POST /tasks envelope, the task list (of
// ledger rows, which the admin API lists too) and the rate-limit budgets. Routes validate with
// these and the OpenAPI catalog documents them; both import this module, which imports neither.
import { TASK_DEFINITIONS, TaskStatus } from '@neuroagent/contracts';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { RATE_LIMITED_ROUTES } from './rate-limit/settings.ts';

/**
 * What POST /tasks parses first: any task name and any input. The input is then checked against
 * that task's schema, so an unknown name is a 404 unknown_task and a bad input names its path.
 */
export const TaskSubmit = Type.Object(
  {
    task: Type.String({
      minLength: 1,
      maxLength: 64,
      description: 'Task name, e.g. run_python or circuit_population_analysis; unknown names get 404',
    }),
    input: Type.Unknown({ description: "The task's input, validated against that task's schema" }),
  },
  { additionalProperties: false },
);
export type TaskSubmit = Static<typeof TaskSubmit>;

const pascal = (name: string) =>
  name
    .split('_')
    .map((w) => (w[0] ?? '').toUpperCase() + w.slice(1))
    .join('');

/** The component name of one task's POST /tasks body, e.g. SubmitRunPython. */
export const submitSchemaId = (task: string) => `Submit${pascal(task)}`;

/**
 * POST /tasks as documented: one body per task, `oneOf` discriminated by `task`, so a generated
 * client gets a typed input for each task. Documentation only (TypeBox unions are `anyOf`).
 */
export function taskSubmitDocument(): TSchema {
  const variants = TASK_DEFINITIONS.map((def) =>
    Type.Object(
      { task: Type.Literal(def.name), input: def.input },
      { additionalProperties: false, $id: submitSchemaId(def.name), description: def.description },
    ),
  );
  return Type.Unsafe({
    $id: 'TaskSubmit',
    oneOf: variants,
    discriminator: {
      propertyName: 'task',
      mapping: Object.fromEntries(
        TASK_DEFINITIONS.map((def) => [def.name, `#/components/schemas/${submitSchemaId(def.name)}`]),
      ),
    },
  });
}

const Iso = Type.String({ description: 'ISO-8601 time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

/** A task's row in the ledger (ledger/ledger.ts LedgerTask): what GET /tasks and /admin/tasks list. */
export const LedgerTask = Type.Object(
  {
    id: Type.String(),
    owner: Type.String(),
    queue: Type.String(),
    task: Type.String(),
    status: TaskStatus,
    submitted_at: Iso,
    started_at: Nullable(Iso),
    finished_at: Nullable(Iso),
    attempts: Type.Integer(),
    error_code: Nullable(Type.String()),
    token_consumption: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    storage_ids: Type.Array(Type.String()),
    input_digest: Type.String(),
    updated_at: Iso,
  },
  { $id: 'LedgerTask' },
);

export const TaskList = Type.Object(
  {
    items: Type.Array(LedgerTask, { description: 'Ledger rows; GET /tasks/{id} has the full record' }),
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as ?cursor= for the next page; null on the last page',
    }),
  },
  { $id: 'TaskList' },
);
export type TaskList = Static<typeof TaskList>;

export const RateLimitBudget = Type.Object({
  limit: Type.Integer({
    minimum: -1,
    description: 'Requests allowed per window; -1 when rate limiting is off',
  }),
  remaining: Type.Integer({ minimum: -1, description: 'Requests left in this window; -1 when off' }),
  reset_in_s: Type.Integer({
    minimum: -1,
    description: 'Seconds until the budget is full again; 0 when untouched, -1 when off',
  }),
});
export type RateLimitBudget = Static<typeof RateLimitBudget>;

/** One budget per rate-limited route: each tool route's id, and `submit` (POST /tasks). */
export const RateLimitBudgets = Type.Object(
  Object.fromEntries(RATE_LIMITED_ROUTES.map((route) => [route, RateLimitBudget])),
  { $id: 'RateLimitBudgets', description: "The caller's budget on each rate-limited route" },
);
