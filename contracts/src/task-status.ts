// Task status, the stored outcome and the record served by GET /tasks/{id} (docs/gateway.md).
import { type Static, Type } from '@sinclair/typebox';
import { ErrorBody } from './error-body.ts';

export const TASK_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const TaskStatus = Type.Union(TASK_STATUSES.map((s) => Type.Literal(s)));
export type TaskStatus = Static<typeof TaskStatus>;

export function isTaskStatus(value: unknown): value is TaskStatus {
  return typeof value === 'string' && (TASK_STATUSES as readonly string[]).includes(value);
}

export function isTerminal(status: TaskStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

// Codes a worker may set on a failed task, whatever its type. Each task contract adds its own.
export const COMMON_FAILURE_CODES = [
  'expired',
  'internal',
  'invalid_message',
  'bad_signature',
  'invalid_input',
  'unknown_task',
  'max_deliveries',
  'cancelled',
] as const;

/** What the worker writes to `task:{id}:result`, before it emits done/error. */
export const TaskOutcome = Type.Union([
  Type.Object({
    status: Type.Literal('succeeded'),
    result: Type.Unknown(),
    finished_at: Type.String(),
    attempts: Type.Integer({ minimum: 1 }),
  }),
  Type.Object({
    status: Type.Union([Type.Literal('failed'), Type.Literal('cancelled')]),
    error: ErrorBody,
    /** A task cancelled while running may still report what it has (run_python: error_type "cancelled"). */
    result: Type.Optional(Type.Unknown()),
    finished_at: Type.String(),
    attempts: Type.Integer({ minimum: 0 }),
  }),
]);
export type TaskOutcome = Static<typeof TaskOutcome>;

export const TaskRecord = Type.Object(
  {
    id: Type.String(),
    task: Type.String(),
    queue: Type.String(),
    status: TaskStatus,
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(ErrorBody),
    submitted_at: Type.Union([Type.String(), Type.Null()]),
    started_at: Type.Union([Type.String(), Type.Null()]),
    finished_at: Type.Union([Type.String(), Type.Null()]),
    attempts: Type.Integer({ minimum: 0 }),
  },
  { $id: 'TaskRecord' },
);
export type TaskRecord = Static<typeof TaskRecord>;

export const TaskAccepted = Type.Object(
  {
    task_id: Type.String(),
    status: TaskStatus,
    status_url: Type.String(),
  },
  { $id: 'TaskAccepted' },
);
export type TaskAccepted = Static<typeof TaskAccepted>;
