// What the worker's writer (task-writer.ts) and the gateway's reader (task-reader.ts) share about a
// task's Redis state (docs/reliability.md): `task:{id}:meta` (hash), `task:{id}:result` (JSON),
// `task:{id}:progress` (event stream) and the global `tasks:events` stream.
import { type TaskEvent, type TaskOutcome, TaskOutcome as TaskOutcomeSchema } from '@neuroagent/contracts';
import { createValidator } from './validator.ts';

export interface SubmittedMeta {
  owner: string;
  queue: string;
  task: string;
  submittedAt: string;
  threadId?: string | undefined;
  requestId?: string | undefined;
}

const outcomeValidator = createValidator(TaskOutcomeSchema);

export function parseOutcome(raw: string): TaskOutcome {
  return outcomeValidator.parse(JSON.parse(raw), 'stored task outcome');
}

/** Turns one XREAD entry (`[id, [field, value, …]]`) into a TaskEvent; unknown fields are ignored. */
export function parseStreamEntry(id: string, fields: string[]): TaskEvent | null {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string);
  const type = map.get('type');
  if (type !== 'started' && type !== 'progress' && type !== 'done' && type !== 'error') return null;
  const event: TaskEvent = { id, type, ts: map.get('ts') ?? '' };
  const data = map.get('data');
  if (data !== undefined) {
    try {
      event.data = JSON.parse(data);
    } catch {
      event.data = data;
    }
  }
  return event;
}

export function throwOnExecError<T extends [Error | null, unknown][] | null>(res: T): T {
  if (res === null) throw new Error('redis transaction aborted');
  for (const [err] of res) if (err) throw err;
  return res;
}
