// Redis side of a task (DESIGN §4): `task:{id}:meta` (hash), `task:{id}:result` (JSON),
// `task:{id}:progress` (event stream) and the global `tasks:events` stream. The worker writes the
// result and the terminal event in one MULTI, result first, so a reader that sees `done` always
// finds the result.
import {
  type Names,
  TASK_STATUSES,
  type TaskEvent,
  type TaskEventType,
  type TaskOutcome,
  TaskOutcome as TaskOutcomeSchema,
  type TaskRecord,
  type TaskStatus,
} from '@neuroagent/contracts';
import type { Redis } from 'ioredis';
import { createValidator } from './validator.ts';

export interface StoreOptions {
  names: Names;
  /** Lifetime of meta, result and progress keys. */
  ttlS: number;
  /** Approximate cap on each task's progress stream. */
  progressMaxLen: number;
  /** Approximate cap on the global `tasks:events` stream. */
  eventsMaxLen: number;
}

export interface SubmittedMeta {
  owner: string;
  queue: string;
  task: string;
  submittedAt: string;
  threadId?: string | undefined;
  requestId?: string | undefined;
}

const outcomeValidator = createValidator(TaskOutcomeSchema);

function isStatus(value: string | undefined): value is TaskStatus {
  return value !== undefined && (TASK_STATUSES as readonly string[]).includes(value);
}

export function createTaskStore(redis: Redis, opts: StoreOptions) {
  const { names, ttlS } = opts;

  function xaddProgress(
    tx: ReturnType<Redis['multi']>,
    taskId: string,
    type: TaskEventType,
    ts: string,
    data: unknown,
  ) {
    const key = names.progressKey(taskId);
    const fields =
      data === undefined ? ['type', type, 'ts', ts] : ['type', type, 'ts', ts, 'data', JSON.stringify(data)];
    tx.xadd(key, 'MAXLEN', '~', opts.progressMaxLen, '*', ...fields);
    tx.expire(key, ttlS);
  }

  function xaddGlobal(
    tx: ReturnType<Redis['multi']>,
    taskId: string,
    status: TaskStatus,
    ts: string,
    extra: string[] = [],
  ) {
    tx.xadd(
      names.eventsKey(),
      'MAXLEN',
      '~',
      opts.eventsMaxLen,
      '*',
      'task_id',
      taskId,
      'status',
      status,
      'ts',
      ts,
      ...extra,
    );
  }

  return {
    /** Gateway, at submit: lets GET /tasks/{id} tell a pending task (202) from an unknown id (404). */
    async writeSubmitted(taskId: string, meta: SubmittedMeta): Promise<void> {
      const key = names.metaKey(taskId);
      const fields: Record<string, string> = {
        owner: meta.owner,
        queue: meta.queue,
        task: meta.task,
        status: 'pending',
        submitted_at: meta.submittedAt,
        attempts: '0',
      };
      if (meta.threadId) fields.thread_id = meta.threadId;
      if (meta.requestId) fields.request_id = meta.requestId;
      await redis.multi().hset(key, fields).expire(key, ttlS).exec().then(throwOnExecError);
    },

    async forget(taskId: string): Promise<void> {
      await redis.del(names.metaKey(taskId));
    },

    /** Worker, before running. Also fills in owner and times for a task replayed with the NATS CLI. */
    async markStarted(taskId: string, meta: SubmittedMeta, attempt: number, worker: string): Promise<void> {
      const key = names.metaKey(taskId);
      const ts = new Date().toISOString();
      const tx = redis.multi();
      tx.hsetnx(key, 'owner', meta.owner);
      tx.hsetnx(key, 'submitted_at', meta.submittedAt);
      tx.hset(key, {
        queue: meta.queue,
        task: meta.task,
        status: 'running',
        started_at: ts,
        attempts: String(attempt),
      });
      tx.expire(key, ttlS);
      xaddProgress(tx, taskId, 'started', ts, { attempt, worker });
      xaddGlobal(tx, taskId, 'running', ts, ['queue', meta.queue, 'attempt', String(attempt)]);
      await tx.exec().then(throwOnExecError);
    },

    async appendProgress(taskId: string, data: unknown): Promise<void> {
      const tx = redis.multi();
      xaddProgress(tx, taskId, 'progress', new Date().toISOString(), data);
      await tx.exec().then(throwOnExecError);
    },

    /** Result, meta and the terminal event in one transaction, result first (see the header). */
    async writeOutcome(taskId: string, meta: SubmittedMeta, outcome: TaskOutcome): Promise<void> {
      const metaKey = names.metaKey(taskId);
      const tx = redis.multi();
      tx.set(names.resultKey(taskId), JSON.stringify(outcome), 'EX', ttlS);
      tx.hsetnx(metaKey, 'owner', meta.owner);
      tx.hsetnx(metaKey, 'submitted_at', meta.submittedAt);
      tx.hset(metaKey, {
        queue: meta.queue,
        task: meta.task,
        status: outcome.status,
        finished_at: outcome.finished_at,
        attempts: String(outcome.attempts),
      });
      tx.expire(metaKey, ttlS);
      const code = outcome.status === 'succeeded' ? undefined : outcome.error.code;
      const data = code === undefined ? { status: outcome.status } : { status: outcome.status, code };
      xaddProgress(tx, taskId, outcome.status === 'succeeded' ? 'done' : 'error', outcome.finished_at, data);
      xaddGlobal(tx, taskId, outcome.status, outcome.finished_at, [
        'queue',
        meta.queue,
        ...(code === undefined ? [] : ['code', code]),
        ...ledgerFields(outcome.result),
      ]);
      await tx.exec().then(throwOnExecError);
    },

    async hasOutcome(taskId: string): Promise<boolean> {
      return (await redis.exists(names.resultKey(taskId))) === 1;
    },

    async readOutcome(taskId: string): Promise<TaskOutcome | null> {
      const raw = await redis.get(names.resultKey(taskId));
      return raw === null ? null : parseOutcome(raw);
    },

    /** What a worker checks before it runs a task, in one round trip. */
    async preflight(taskId: string): Promise<{ hasOutcome: boolean; cancelRequested: boolean }> {
      const res = (await redis
        .multi()
        .exists(names.resultKey(taskId))
        .exists(names.cancelKey(taskId))
        .exec()
        .then(throwOnExecError)) as [[null, number], [null, number]];
      return { hasOutcome: res[0][1] === 1, cancelRequested: res[1][1] === 1 };
    },

    async isCancelRequested(taskId: string): Promise<boolean> {
      return (await redis.exists(names.cancelKey(taskId))) === 1;
    },

    /** The durable half of a cancel: a worker checks this flag before it starts the task. */
    async flagCancel(taskId: string): Promise<void> {
      await redis.set(names.cancelKey(taskId), new Date().toISOString(), 'EX', ttlS);
    },

    /** The record of GET /tasks/{id}; null for an id Redis has never seen (or forgot). */
    async readRecord(taskId: string): Promise<(TaskRecord & { owner: string }) | null> {
      const [metaRes, resultRes] = (await redis
        .multi()
        .hgetall(names.metaKey(taskId))
        .get(names.resultKey(taskId))
        .exec()
        .then(throwOnExecError)) as [[null, Record<string, string>], [null, string | null]];
      const meta = metaRes[1];
      const rawOutcome = resultRes[1];
      if (Object.keys(meta).length === 0 && rawOutcome === null) return null;
      const outcome = rawOutcome === null ? null : parseOutcome(rawOutcome);
      const record: TaskRecord & { owner: string } = {
        id: taskId,
        owner: meta.owner ?? '',
        task: meta.task ?? '',
        queue: meta.queue ?? '',
        status: outcome?.status ?? (isStatus(meta.status) ? meta.status : 'pending'),
        submitted_at: meta.submitted_at ?? null,
        started_at: meta.started_at ?? null,
        finished_at: outcome?.finished_at ?? meta.finished_at ?? null,
        attempts: outcome?.attempts ?? Number(meta.attempts ?? 0),
      };
      if (outcome?.status === 'succeeded') record.result = outcome.result;
      else if (outcome) {
        record.error = outcome.error;
        if (outcome.result !== undefined) record.result = outcome.result;
      }
      return record;
    },
  };
}

export type TaskStore = ReturnType<typeof createTaskStore>;

/** What the ledger keeps of a result: token usage (circuit tasks) and stored file ids (run_python). */
export function ledgerFields(result: unknown): string[] {
  if (!result || typeof result !== 'object') return [];
  const r = result as { token_consumption?: unknown; storage_id?: unknown };
  const fields: string[] = [];
  if (r.token_consumption && typeof r.token_consumption === 'object') {
    fields.push('token_consumption', JSON.stringify(r.token_consumption));
  }
  if (Array.isArray(r.storage_id) && r.storage_id.length > 0)
    fields.push('storage_ids', JSON.stringify(r.storage_id));
  return fields;
}

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

function throwOnExecError<T extends [Error | null, unknown][] | null>(res: T): T {
  if (res === null) throw new Error('redis transaction aborted');
  for (const [err] of res) if (err) throw err;
  return res;
}
