// Redis side of a task (docs/reliability.md): `task:{id}:meta` (hash), `task:{id}:result` (JSON),
// `task:{id}:progress` (event stream) and the global `tasks:events` stream. The worker writes the
// result and the terminal event in one MULTI, result first, so a reader that sees `done` always
// finds the result.
import {
  encodeTaskEventsEntry,
  isTaskStatus,
  type Names,
  type TaskEvent,
  type TaskEventsEntry,
  type TaskEventType,
  type TaskOutcome,
  TaskOutcome as TaskOutcomeSchema,
  type TaskRecord,
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
  /**
   * Largest task record (JSON bytes) carried in a terminal `tasks:events` entry, so a waiting
   * gateway answers without reading it back; 0 (the default) never carries it.
   */
  recordInlineMaxBytes?: number;
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

export function createTaskStore(redis: Redis, opts: StoreOptions) {
  const { names, ttlS } = opts;
  if (!('neuroagentBeginTask' in redis)) {
    redis.defineCommand('neuroagentBeginTask', { numberOfKeys: 5, lua: BEGIN_SCRIPT });
  }

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

  function xaddGlobal(tx: ReturnType<Redis['multi']>, entry: TaskEventsEntry) {
    tx.xadd(names.eventsKey(), 'MAXLEN', '~', opts.eventsMaxLen, '*', ...encodeTaskEventsEntry(entry));
  }

  /** The record readRecord() would build after this outcome, as JSON, or null when too large. */
  function inlineRecord(
    taskId: string,
    meta: SubmittedMeta,
    outcome: TaskOutcome,
    outcomeJson: string,
    startedAt: string,
  ) {
    const max = opts.recordInlineMaxBytes ?? 0;
    // The record holds the outcome: when the outcome alone is too long, never serialize it again.
    if (max <= 0 || outcomeJson.length > max) return null;
    const record: TaskRecord & { owner: string } = {
      id: taskId,
      owner: meta.owner,
      task: meta.task,
      queue: meta.queue,
      status: outcome.status,
      submitted_at: meta.submittedAt,
      started_at: startedAt,
      finished_at: outcome.finished_at,
      attempts: outcome.attempts,
    };
    if (outcome.status !== 'succeeded') record.error = outcome.error;
    if (outcome.result !== undefined) record.result = outcome.result;
    const json = JSON.stringify(record);
    return Buffer.byteLength(json) <= max ? json : null;
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

    async appendProgress(taskId: string, data: unknown): Promise<void> {
      const tx = redis.multi();
      xaddProgress(tx, taskId, 'progress', new Date().toISOString(), data);
      await tx.exec().then(throwOnExecError);
    },

    /** Result, meta and the terminal event in one transaction, result first (see the header). */
    /**
     * `startedAt` is the instant this delivery's begin() marked the task started; with it (and a
     * small enough record) the terminal `tasks:events` entry carries the whole record.
     */
    async writeOutcome(
      taskId: string,
      meta: SubmittedMeta,
      outcome: TaskOutcome,
      startedAt?: string,
    ): Promise<void> {
      const metaKey = names.metaKey(taskId);
      const tx = redis.multi();
      const outcomeJson = JSON.stringify(outcome);
      tx.set(names.resultKey(taskId), outcomeJson, 'EX', ttlS);
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
      const inline =
        startedAt === undefined ? null : inlineRecord(taskId, meta, outcome, outcomeJson, startedAt);
      xaddGlobal(tx, {
        taskId,
        status: outcome.status,
        ts: outcome.finished_at,
        ...taskFields(meta),
        code,
        ...ledgerFields(outcome.result),
        record: inline ?? undefined,
      });
      await tx.exec().then(throwOnExecError);
    },

    async hasOutcome(taskId: string): Promise<boolean> {
      return (await redis.exists(names.resultKey(taskId))) === 1;
    },

    async readOutcome(taskId: string): Promise<TaskOutcome | null> {
      const raw = await redis.get(names.resultKey(taskId));
      return raw === null ? null : parseOutcome(raw);
    },

    /**
     * What a worker does before it runs a task, in ONE round trip (a script, so the checks and the
     * write are atomic): `duplicate` when the result exists (a redelivery of a finished task: ack
     * it, never run twice), `cancelled` when the cancel flag is set, `blocked` when the caller
     * said it cannot start (expired, no handler) — none of these writes anything — and otherwise
     * `started`: meta (owner and submit time kept if present, else taken from the message, as for a
     * task replayed with the NATS CLI), a `started` progress event and a `running` tasks:events entry.
     */
    async begin(
      taskId: string,
      meta: SubmittedMeta,
      attempt: number,
      worker: string,
      startable: boolean,
      ts = new Date().toISOString(),
    ): Promise<BeginState> {
      const metaFields = [
        'queue',
        meta.queue,
        'task',
        meta.task,
        'status',
        'running',
        'started_at',
        ts,
        'attempts',
        String(attempt),
      ];
      const progress = ['type', 'started', 'ts', ts, 'data', JSON.stringify({ attempt, worker })];
      const event = encodeTaskEventsEntry({ taskId, status: 'running', ts, ...taskFields(meta), attempt });
      const state = (await (redis as ScriptedRedis).neuroagentBeginTask(
        names.resultKey(taskId),
        names.cancelKey(taskId),
        names.metaKey(taskId),
        names.progressKey(taskId),
        names.eventsKey(),
        startable ? '1' : '0',
        ttlS,
        opts.progressMaxLen,
        opts.eventsMaxLen,
        meta.owner,
        meta.submittedAt,
        metaFields.length,
        ...metaFields,
        progress.length,
        ...progress,
        ...event,
      )) as BeginState;
      return state;
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
        status: outcome?.status ?? (isTaskStatus(meta.status) ? meta.status : 'pending'),
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

export type BeginState = 'duplicate' | 'cancelled' | 'blocked' | 'started';

type ScriptedRedis = Redis & { neuroagentBeginTask(...args: (string | number)[]): Promise<string> };

// KEYS: result, cancel, meta, progress, events. ARGV: startable, ttl, progress maxlen, events
// maxlen, owner, submitted_at, n + meta fields, n + progress entry fields, events entry fields.
// Sent by SHA (EVALSHA), the body only when Redis does not know it yet.
const BEGIN_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'cancelled' end
if ARGV[1] ~= '1' then return 'blocked' end
redis.call('HSETNX', KEYS[3], 'owner', ARGV[5])
redis.call('HSETNX', KEYS[3], 'submitted_at', ARGV[6])
local i = 7
local n = tonumber(ARGV[i])
redis.call('HSET', KEYS[3], unpack(ARGV, i + 1, i + n))
redis.call('EXPIRE', KEYS[3], ARGV[2])
i = i + n + 1
n = tonumber(ARGV[i])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, i + 1, i + n))
redis.call('EXPIRE', KEYS[4], ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, i + n + 1, #ARGV))
return 'started'
`;

/**
 * Who and what the task is, on every `tasks:events` entry (queue, task, owner, submitted_at): the
 * ledger creates the row of a task it never saw submitted (a replay, a NATS CLI publish) from these,
 * so the owner's `GET /tasks` lists it. Empty values are left out.
 */
function taskFields(meta: SubmittedMeta): Pick<TaskEventsEntry, 'queue' | 'task' | 'owner' | 'submittedAt'> {
  return { queue: meta.queue, task: meta.task, owner: meta.owner, submittedAt: meta.submittedAt };
}

/** What the ledger keeps of a result: token usage (circuit tasks) and stored file ids (run_python). */
export function ledgerFields(result: unknown): Pick<TaskEventsEntry, 'tokenConsumption' | 'storageIds'> {
  if (!result || typeof result !== 'object') return {};
  const r = result as { token_consumption?: unknown; storage_id?: unknown };
  const fields: Pick<TaskEventsEntry, 'tokenConsumption' | 'storageIds'> = {};
  if (r.token_consumption && typeof r.token_consumption === 'object') {
    fields.tokenConsumption = r.token_consumption as Record<string, unknown>;
  }
  if (Array.isArray(r.storage_id) && r.storage_id.length > 0) fields.storageIds = r.storage_id as string[];
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
