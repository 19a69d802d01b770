// One entry of the global `tasks:events` stream: every status change of every task, written by the
// worker (in the same transaction as the state it reports) and read by the gateway's completion
// watch (to wake long polls) and its ledger consumer (to keep the durable row). The entry is flat
// Redis stream fields; this codec is the only place that knows their names and checks their values.
// Anything on the stream may have been written by hand (redis-cli, a replay), so decoding validates
// every field and drops what does not fit rather than trusting it.
import { isTaskId } from './names.ts';
import { isTaskStatus, type TaskStatus } from './task-status.ts';
import { isQueueName } from './tasks.ts';

export interface TaskEventsEntry {
  taskId: string;
  status: TaskStatus;
  /** ISO-8601 time of the change. Decoding falls back to the entry id's time when it is unusable. */
  ts: string;
  /** The failure code of a failed or cancelled task. */
  code?: string | undefined;
  /** The delivery attempt that started the task (on `running` entries). */
  attempt?: number | undefined;
  queue?: string | undefined;
  /** Task name, owner and submit time, so a row can be created for a task never seen submitted. */
  task?: string | undefined;
  owner?: string | undefined;
  submittedAt?: string | undefined;
  tokenConsumption?: Record<string, unknown> | undefined;
  storageIds?: string[] | undefined;
  /** On terminal entries, when small enough: the whole task record, as JSON. */
  record?: string | undefined;
}

/**
 * Longest values a decoded entry keeps: a longer code is cut; a longer task or owner is dropped,
 * never truncated into another user's name (these are the ledger's column sizes).
 */
export const TASK_EVENTS_ENTRY_LIMITS = { codeChars: 64, taskChars: 128, ownerChars: 255 } as const;

/** The entry as Redis stream fields (`field, value, …`); absent and empty values are left out. */
export function encodeTaskEventsEntry(e: TaskEventsEntry): string[] {
  const fields = ['task_id', e.taskId, 'status', e.status, 'ts', e.ts];
  const add = (name: string, value: string | undefined) => {
    if (value !== undefined && value !== '') fields.push(name, value);
  };
  add('queue', e.queue);
  add('task', e.task);
  add('owner', e.owner);
  add('submitted_at', e.submittedAt);
  add('code', e.code);
  if (e.attempt !== undefined) fields.push('attempt', String(e.attempt));
  if (e.tokenConsumption !== undefined) add('token_consumption', JSON.stringify(e.tokenConsumption));
  if (e.storageIds !== undefined && e.storageIds.length > 0) add('storage_ids', JSON.stringify(e.storageIds));
  add('record', e.record);
  return fields;
}

/** One stream entry as a TaskEventsEntry; null when it names no valid task or status. */
export function decodeTaskEventsEntry(entryId: string, fields: readonly unknown[]): TaskEventsEntry | null {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(String(fields[i]), String(fields[i + 1]));
  const taskId = map.get('task_id');
  const status = map.get('status');
  if (taskId === undefined || !isTaskId(taskId)) return null;
  if (!isTaskStatus(status)) return null;
  const rawTs = map.get('ts');
  const ts =
    rawTs !== undefined && !Number.isNaN(Date.parse(rawTs))
      ? rawTs
      : new Date(Number(entryId.split('-')[0])).toISOString();
  const entry: TaskEventsEntry = { taskId, status, ts };
  const limits = TASK_EVENTS_ENTRY_LIMITS;
  const code = map.get('code');
  if (code !== undefined && code !== '') entry.code = code.slice(0, limits.codeChars);
  const queue = map.get('queue');
  if (queue !== undefined && isQueueName(queue)) entry.queue = queue;
  const task = map.get('task');
  if (task !== undefined && task !== '' && task.length <= limits.taskChars) entry.task = task;
  const owner = map.get('owner');
  if (owner !== undefined && owner !== '' && owner.length <= limits.ownerChars) entry.owner = owner;
  const submittedAt = map.get('submitted_at');
  if (submittedAt !== undefined && !Number.isNaN(Date.parse(submittedAt))) entry.submittedAt = submittedAt;
  const attempt = Number(map.get('attempt') ?? Number.NaN);
  if (Number.isInteger(attempt) && attempt >= 0) entry.attempt = attempt;
  const tokens = parseJson(map.get('token_consumption'));
  if (tokens !== null && typeof tokens === 'object' && !Array.isArray(tokens)) {
    entry.tokenConsumption = tokens as Record<string, unknown>;
  }
  const storage = parseJson(map.get('storage_ids'));
  if (Array.isArray(storage) && storage.every((s) => typeof s === 'string')) entry.storageIds = storage;
  const record = map.get('record');
  if (record !== undefined && record !== '') entry.record = record;
  return entry;
}

function parseJson(raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
