// The worker's side of a task's Redis state (docs/reliability.md): it marks a task started, appends
// progress, and writes the outcome. The result and the terminal event go in one script, result
// first, so a reader that sees `done` always finds the result. The gateway never writes these (task-reader.ts).
//
// On a Redis Cluster the task's keys share a slot (their hash tag) but its tasks:events shard does
// not, and no MULTI or script spans slots. There the event is appended right after the script
// instead: still after the result, so the reading order holds. A worker that dies between the two
// leaves its message unacked; the redelivery finds the result (begin() answers `duplicate`) and
// appends the terminal event again from it, so the ledger and the waiters still see the end.
import {
  encodeTaskEventsEntry,
  ledgerFieldsOf,
  type Names,
  type TaskEventsEntry,
  type TaskEventType,
  type TaskOutcome,
  type TaskRecord,
} from '@neuroagent/contracts';
import type { Redis } from 'ioredis';
import { AppError } from './errors.ts';
import { parseOutcome, type SubmittedMeta, throwOnExecError } from './task-state.ts';
import { ATTR, SpanKind, withSpan } from './tracing.ts';

const redisSpan = (operation: string) => ({
  kind: SpanKind.CLIENT,
  attributes: { [ATTR.dbSystem]: 'redis', [ATTR.dbOperation]: operation },
});
const PROGRESS_SPAN = redisSpan('MULTI');
const OUTCOME_SPAN = redisSpan('EVALSHA');
// The begin script (EVALSHA): duplicate and cancel checks, then the started mark.
const BEGIN_SPAN = redisSpan('EVALSHA');

export interface TaskWriterOptions {
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
  /**
   * Replicas that must hold an outcome before writeOutcome() (and a duplicate's begin()) returns,
   * by WAIT: the message is acked only once a failover could not lose the result. 0 (the default)
   * does not wait, and asynchronous replication may lose the last writes (docs/reliability.md).
   */
  waitReplicas?: number;
  /** How long WAIT may take; fewer replicas by then is a ReplicationLagError (the message is retried). */
  waitTimeoutMs?: number;
}

/** The outcome is on the primary but not yet on enough replicas: retry before acking. */
export class ReplicationLagError extends AppError {
  constructor(acked: number, wanted: number) {
    super(
      'redis_replication_lag',
      `redis WAIT: ${acked} of ${wanted} replicas acknowledged the write in time`,
      {
        retryable: true,
      },
    );
    this.name = 'ReplicationLagError';
  }
}

export function createTaskWriter(redis: Redis, opts: TaskWriterOptions) {
  const { names, ttlS } = opts;
  // One MULTI or script may carry the events entry only when it lives on the same server.
  const colocated = !redis.isCluster;
  if (!('neuroagentBeginTask' in redis)) {
    // The same script: with 4 keys it leaves the `running` entry to a separate XADD.
    redis.defineCommand('neuroagentBeginTask', { numberOfKeys: 5, lua: BEGIN_SCRIPT });
    redis.defineCommand('neuroagentBeginTaskLocal', { numberOfKeys: 4, lua: BEGIN_SCRIPT });
    redis.defineCommand('neuroagentWriteOutcome', { numberOfKeys: 4, lua: OUTCOME_SCRIPT });
    redis.defineCommand('neuroagentWriteOutcomeLocal', { numberOfKeys: 3, lua: OUTCOME_SCRIPT });
  }
  const waitReplicas = opts.waitReplicas ?? 0;
  const waitTimeoutMs = opts.waitTimeoutMs ?? 1000;

  /**
   * WAIT on the connection that wrote the task's keys (on a cluster, its slot's primary) and, on a
   * cluster, on the one that wrote its tasks:events shard, which lives on another primary.
   */
  async function replicated(taskId: string): Promise<void> {
    if (waitReplicas <= 0) return;
    const routes = colocated
      ? [names.resultKey(taskId)]
      : [names.resultKey(taskId), names.eventsKeyOf(taskId)];
    await Promise.all(
      routes.map(async (key) => {
        // A keyless WAIT must follow the writes on their node: the EXISTS routes the pipeline there.
        const res = await redis.pipeline().exists(key).wait(waitReplicas, waitTimeoutMs).exec();
        const replies = throwOnExecError(res);
        const acked = Number(replies?.[1]?.[1] ?? 0);
        if (acked < waitReplicas) throw new ReplicationLagError(acked, waitReplicas);
      }),
    );
  }

  /**
   * One of the task scripts, with their shared ARGV (WRITE_TASK_STATE): `own` is the script's own
   * argument. The tasks:events entry goes in the script only where its shard is on the same server.
   */
  function taskScript(
    script: 'neuroagentBeginTask' | 'neuroagentWriteOutcome',
    keys: string[],
    taskId: string,
    own: string,
    meta: SubmittedMeta,
    fields: string[],
    progress: string[],
    event: string[],
  ): Promise<string> {
    const scripted = redis as ScriptedRedis;
    const call = colocated
      ? scripted[script].bind(scripted, ...keys, names.eventsKeyOf(taskId))
      : scripted[`${script}Local`].bind(scripted, ...keys);
    return call(
      ttlS,
      opts.progressMaxLen,
      opts.eventsMaxLen,
      own,
      meta.owner,
      meta.submittedAt,
      fields.length,
      ...fields,
      progress.length,
      ...progress,
      ...(colocated ? event : []),
    );
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

  function xaddGlobal(tx: Pick<Redis, 'xadd'> | ReturnType<Redis['multi']>, entry: TaskEventsEntry) {
    const fields = encodeTaskEventsEntry(entry);
    return tx.xadd(names.eventsKeyOf(entry.taskId), 'MAXLEN', '~', opts.eventsMaxLen, '*', ...fields);
  }

  /** The terminal tasks:events entry of an outcome (see writeOutcome). */
  function terminalEntry(taskId: string, meta: SubmittedMeta, outcome: TaskOutcome, record: string | null) {
    const code = outcome.status === 'succeeded' ? undefined : outcome.error.code;
    return {
      taskId,
      status: outcome.status,
      ts: outcome.finished_at,
      ...taskFields(meta),
      code,
      ...ledgerFieldsOf(meta.task, outcome.result),
      record: record ?? undefined,
    } satisfies TaskEventsEntry;
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

  /** Cluster only: the terminal event again, from the stored outcome (see the header). */
  async function reemitTerminal(taskId: string, meta: SubmittedMeta): Promise<void> {
    const raw = await redis.get(names.resultKey(taskId));
    if (raw === null) return;
    await xaddGlobal(redis, terminalEntry(taskId, meta, parseOutcome(raw), null));
  }

  const writer = {
    async appendProgress(taskId: string, data: unknown): Promise<void> {
      const tx = redis.multi();
      xaddProgress(tx, taskId, 'progress', new Date().toISOString(), data);
      await tx.exec().then(throwOnExecError);
    },

    /**
     * Result, meta and the terminal event in one script, result first (see the header).
     * `startedAt` is the instant this delivery's begin() marked the task started; with it (and a
     * small enough record) the terminal `tasks:events` entry carries the whole record.
     */
    async writeOutcome(
      taskId: string,
      meta: SubmittedMeta,
      outcome: TaskOutcome,
      startedAt?: string,
    ): Promise<void> {
      const outcomeJson = JSON.stringify(outcome);
      const code = outcome.status === 'succeeded' ? undefined : outcome.error.code;
      const data = code === undefined ? { status: outcome.status } : { status: outcome.status, code };
      const type: TaskEventType = outcome.status === 'succeeded' ? 'done' : 'error';
      const progress = ['type', type, 'ts', outcome.finished_at, 'data', JSON.stringify(data)];
      const inline =
        startedAt === undefined ? null : inlineRecord(taskId, meta, outcome, outcomeJson, startedAt);
      const entry = terminalEntry(taskId, meta, outcome, inline);
      await taskScript(
        'neuroagentWriteOutcome',
        [names.resultKey(taskId), names.metaKey(taskId), names.progressKey(taskId)],
        taskId,
        outcomeJson,
        meta,
        stateFields(meta, outcome.status, 'finished_at', outcome.finished_at, outcome.attempts),
        progress,
        encodeTaskEventsEntry(entry),
      );
      if (!colocated) await xaddGlobal(redis, entry);
      await replicated(taskId);
    },

    /**
     * A dead-lettered task's failure, unless the task already has an outcome: a message that runs
     * out of deliveries after its result was stored (e.g. WAIT kept failing) or that names another
     * task's id must not replace a real result. Returns false when it kept the existing one.
     */
    async recordFailureUnlessFinished(
      taskId: string,
      meta: SubmittedMeta,
      outcome: TaskOutcome,
    ): Promise<boolean> {
      if ((await redis.exists(names.resultKey(taskId))) === 1) return false;
      await this.writeOutcome(taskId, meta, outcome);
      return true;
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
      const progress = ['type', 'started', 'ts', ts, 'data', JSON.stringify({ attempt, worker })];
      const event = encodeTaskEventsEntry({ taskId, status: 'running', ts, ...taskFields(meta), attempt });
      const state = (await taskScript(
        'neuroagentBeginTask',
        [names.resultKey(taskId), names.cancelKey(taskId), names.metaKey(taskId), names.progressKey(taskId)],
        taskId,
        startable ? '1' : '0',
        meta,
        stateFields(meta, 'running', 'started_at', ts, attempt),
        progress,
        event,
      )) as BeginState;
      if (state === 'started' && !colocated)
        await redis.xadd(names.eventsKeyOf(taskId), 'MAXLEN', '~', opts.eventsMaxLen, '*', ...event);
      if (state === 'duplicate') {
        if (!colocated) await reemitTerminal(taskId, meta);
        await replicated(taskId);
      }
      return state;
    },
  };

  // Each write in a CLIENT span (tracing.ts; a null check with tracing off).
  // recordFailureUnlessFinished() reaches the traced writeOutcome through `this`.
  return {
    ...writer,
    appendProgress: (taskId: string, data: unknown) =>
      withSpan('redis append_progress', PROGRESS_SPAN, (span) => {
        span?.setAttribute(ATTR.taskId, taskId);
        return writer.appendProgress(taskId, data);
      }),
    writeOutcome: (...args: Parameters<typeof writer.writeOutcome>) =>
      withSpan('redis write_outcome', OUTCOME_SPAN, (span) => {
        span?.setAttributes({ [ATTR.taskId]: args[0], [ATTR.taskOutcome]: args[2].status });
        return writer.writeOutcome(...args);
      }),
    begin: (...args: Parameters<typeof writer.begin>) =>
      withSpan('redis begin_task', BEGIN_SPAN, async (span) => {
        span?.setAttribute(ATTR.taskId, args[0]);
        const state = await writer.begin(...args);
        span?.setAttribute('neuroagent.task.begin', state);
        return state;
      }),
  };
}

export type TaskWriter = ReturnType<typeof createTaskWriter>;

export type BeginState = 'duplicate' | 'cancelled' | 'blocked' | 'started';

type TaskScript = (...args: (string | number)[]) => Promise<string>;
type ScriptedRedis = Redis & {
  neuroagentBeginTask: TaskScript;
  neuroagentBeginTaskLocal: TaskScript;
  neuroagentWriteOutcome: TaskScript;
  neuroagentWriteOutcomeLocal: TaskScript;
};

// What both scripts write once they go ahead, as a Lua function of the keys (meta, progress and,
// when it is on the same server, the tasks:events shard; nil otherwise). Both scripts take the
// same ARGV: ttl, progress maxlen, events maxlen, their own argument, owner, submitted_at,
// n + meta fields, n + progress entry fields, then the events entry fields. Sent by SHA (EVALSHA),
// the body only when Redis does not know it yet.
const WRITE_TASK_STATE = `
local function writeTaskState(meta, progress, events)
  redis.call('HSETNX', meta, 'owner', ARGV[5])
  redis.call('HSETNX', meta, 'submitted_at', ARGV[6])
  local i = 7
  local n = tonumber(ARGV[i])
  redis.call('HSET', meta, unpack(ARGV, i + 1, i + n))
  redis.call('EXPIRE', meta, ARGV[1])
  i = i + n + 1
  n = tonumber(ARGV[i])
  redis.call('XADD', progress, 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, i + 1, i + n))
  redis.call('EXPIRE', progress, ARGV[1])
  if events then redis.call('XADD', events, 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, i + n + 1, #ARGV)) end
end
`;

// KEYS: result, cancel, meta, progress[, events]. ARGV[4]: '1' when the task may start.
const BEGIN_SCRIPT = `${WRITE_TASK_STATE}
if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'cancelled' end
if ARGV[4] ~= '1' then return 'blocked' end
writeTaskState(KEYS[3], KEYS[4], KEYS[5])
return 'started'
`;

// KEYS: result, meta, progress[, events]. ARGV[4]: the outcome JSON. The result first, then meta,
// progress and the terminal tasks:events entry, all at once: what a MULTI did, but as one command,
// which the auto-pipeline sends together with the commands of other tasks (a MULTI is a pipeline,
// and a socket write, of its own).
const OUTCOME_SCRIPT = `${WRITE_TASK_STATE}
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[1])
writeTaskState(KEYS[2], KEYS[3], KEYS[4])
return 1
`;

/** The meta fields a script sets (owner and submit time are only kept or filled in). */
function stateFields(
  meta: SubmittedMeta,
  status: string,
  timeField: 'started_at' | 'finished_at',
  ts: string,
  attempts: number,
): string[] {
  return [
    'queue',
    meta.queue,
    'task',
    meta.task,
    'status',
    status,
    timeField,
    ts,
    'attempts',
    String(attempts),
  ];
}

/**
 * Who and what the task is, on every `tasks:events` entry (queue, task, owner, submitted_at): the
 * ledger creates the row of a task it never saw submitted (a replay, a NATS CLI publish) from these,
 * so the owner's `GET /tasks` lists it. Empty values are left out.
 */
function taskFields(meta: SubmittedMeta): Pick<TaskEventsEntry, 'queue' | 'task' | 'owner' | 'submittedAt'> {
  return { queue: meta.queue, task: meta.task, owner: meta.owner, submittedAt: meta.submittedAt };
}
