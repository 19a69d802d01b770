// The gateway's side of a task's Redis state (docs/reliability.md): the meta written at submit (so
// GET /tasks/{id} tells a pending task from an unknown id), the cancel flag, and the record a client
// reads. Results, progress and events are written only by the worker (task-writer.ts).
import { isTaskStatus, type Names, type TaskOutcome, type TaskRecord } from '@neuroagent/contracts';
import type { Redis } from 'ioredis';
import { parseOutcome, type SubmittedMeta, throwOnExecError } from './task-state.ts';
import { ATTR, SpanKind, tracingEnabled, withSpan } from './tracing.ts';

const META_SPAN = {
  kind: SpanKind.CLIENT,
  attributes: { [ATTR.dbSystem]: 'redis', [ATTR.dbOperation]: 'EVALSHA' },
};

// HSET and EXPIRE as one atomic command: a MULTI/EXEC is four commands in a pipeline of its own (a
// write of its own), where one script call joins the commands of concurrent requests in the same
// write (auto-pipelining). ARGV[1] is the TTL, then field, value pairs.
const HSET_EXPIRE = {
  numberOfKeys: 1,
  lua: "redis.call('HSET', KEYS[1], unpack(ARGV, 2)); return redis.call('EXPIRE', KEYS[1], ARGV[1])",
};
const HSET_EXPIRE_COMMAND = 'neuroagentHsetExpire';
type WithHsetExpire = Redis & {
  [HSET_EXPIRE_COMMAND](key: string, ttlS: number, ...fieldsAndValues: string[]): Promise<number>;
};

export interface TaskReaderOptions {
  names: Names;
  /** Lifetime of the meta written at submit and of the cancel flag. */
  ttlS: number;
}

export function createTaskReader(redis: Redis, opts: TaskReaderOptions) {
  const { names, ttlS } = opts;
  if (!(HSET_EXPIRE_COMMAND in redis)) redis.defineCommand(HSET_EXPIRE_COMMAND, HSET_EXPIRE);
  const scripted = redis as WithHsetExpire;
  async function writeMeta(key: string, fields: Record<string, string>): Promise<void> {
    await scripted[HSET_EXPIRE_COMMAND](key, ttlS, ...Object.entries(fields).flat());
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
      if (!tracingEnabled()) return writeMeta(key, fields);
      await withSpan('redis write_submitted', META_SPAN, (span) => {
        span?.setAttribute(ATTR.taskId, taskId);
        return writeMeta(key, fields);
      });
    },

    async forget(taskId: string): Promise<void> {
      await redis.del(names.metaKey(taskId));
    },

    /** The durable half of a cancel: a worker checks this flag before it starts the task. */
    async flagCancel(taskId: string): Promise<void> {
      await redis.set(names.cancelKey(taskId), new Date().toISOString(), 'EX', ttlS);
    },

    async hasOutcome(taskId: string): Promise<boolean> {
      return (await redis.exists(names.resultKey(taskId))) === 1;
    },

    async readOutcome(taskId: string): Promise<TaskOutcome | null> {
      const raw = await redis.get(names.resultKey(taskId));
      return raw === null ? null : parseOutcome(raw);
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

export type TaskReader = ReturnType<typeof createTaskReader>;
