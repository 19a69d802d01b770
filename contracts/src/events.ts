// Progress events on the Redis stream `task:{id}:progress`. Each stream entry has the flat fields
// `type`, `ts` and, where it has one, `data` (a JSON string). done/error are terminal.
import { type Static, Type } from '@sinclair/typebox';

export const EVENT_TYPES = ['started', 'progress', 'done', 'error'] as const;
export const TaskEventType = Type.Union(EVENT_TYPES.map((t) => Type.Literal(t)));
export type TaskEventType = Static<typeof TaskEventType>;

export const TaskEvent = Type.Object({
  /** Redis stream entry id, e.g. `1732412345678-0`. */
  id: Type.String(),
  type: TaskEventType,
  ts: Type.String(),
  data: Type.Optional(Type.Unknown()),
});
export type TaskEvent = Static<typeof TaskEvent>;

export function isTerminalEvent(type: TaskEventType): boolean {
  return type === 'done' || type === 'error';
}

/** `data` of a `started` event. */
export const StartedData = Type.Object({ attempt: Type.Integer({ minimum: 1 }), worker: Type.String() });
export type StartedData = Static<typeof StartedData>;

/** `data` of a `progress` event: free-form, for long tasks. */
export const ProgressData = Type.Object({
  fraction: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  message: Type.Optional(Type.String()),
});
export type ProgressData = Static<typeof ProgressData>;

/** `data` of a terminal event: the status, and the error code when it failed. */
export const TerminalData = Type.Object({
  status: Type.String(),
  code: Type.Optional(Type.String()),
});
export type TerminalData = Static<typeof TerminalData>;
