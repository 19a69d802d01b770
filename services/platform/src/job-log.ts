// Inspecting and replaying jobs from the JetStream log (docs/operations.md): list, show, replay one
// job, replay a time window, re-drive the dead-letter stream. The logic behind `npm run replay`
// and the admin API (docs/admin-api.md), as functions over a NATS connection.
//
// Reading never disturbs the workers: messages are read through an ordered consumer (ephemeral,
// in memory, no acks; deleted when done) or a stream message get, never through the durable
// work-queue consumers. A replay is a plain republish of the stored body under a NEW task id (the
// id is only in the subject and Nats-Msg-Id, never in the body), with the same input, owner
// (userId), thread and request id; only `submittedAt` is set to the replay time (see
// docs/operations.md, "Replay semantics"). A message that is not a valid task (poison) cannot be
// replayed as it is: it is reported and skipped. That includes a message whose Task-Signature does
// not verify: re-signing it would launder a forgery, so it is replayed only when the operator says
// they vouch for it (acceptUnsigned, `--accept-unsigned`). Every replay is signed for its new id.
import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  type StoredMsg,
} from '@nats-io/jetstream';
import { type MsgHdrs, type NatsConnection, headers as natsHeaders } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import {
  createNames,
  HEADERS,
  isTaskId,
  type Names,
  type QueueName,
  type TaskEnvelope,
} from '@neuroagent/contracts';
import { AppError, errorMessage } from './errors.ts';
import { parseTaskMessage } from './message-parser.ts';
import type { TaskSigner } from './signing.ts';
import { newTaskId } from './task-id.ts';

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export const REPLAY_ERROR_CODES = [
  'bad_arguments',
  'task_not_found',
  'stream_not_found',
  'nats_unreachable',
  'publish_failed',
] as const;
export type ReplayErrorCode = (typeof REPLAY_ERROR_CODES)[number];

export class ReplayError extends AppError {
  declare readonly code: ReplayErrorCode;
  constructor(code: ReplayErrorCode, message: string, options: ErrorOptions = {}) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'ReplayError';
  }
}

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

export interface ReplayTarget {
  /** JetStream stream of task messages (TASKS_NATS__STREAM); the dead letters are in `<stream>_DLQ`. */
  stream: string;
  /** TASKS_NATS__SUBJECT_PREFIX: task subjects are `<prefix>.<queue>.<task id>`. */
  subjectPrefix: string;
}

export interface ReplayContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  subjectPrefix: string;
  /** How long each publish waits for its PubAck. */
  publishTimeoutMs: number;
  /** Verifies stored messages and signs replays (the workers' TASKS_NATS__SIGNING_KEY). */
  signer: TaskSigner;
  /** Replay messages whose signature does not verify (the operator vouches for them). */
  acceptUnsigned: boolean;
  /** The clock of new task ids and of `submittedAt` (tests pin it). */
  now: () => Date;
}

export async function createReplayContext(
  nc: NatsConnection,
  target: ReplayTarget,
  options: { signer: TaskSigner; acceptUnsigned?: boolean; publishTimeoutMs?: number; now?: () => Date },
): Promise<ReplayContext> {
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
  } catch (err) {
    throw new ReplayError('stream_not_found', `JetStream is not available: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return {
    js: jetstream(nc),
    jsm,
    // Redis keys are not used here: the replay only talks to JetStream.
    names: createNames({ stream: target.stream, subjectPrefix: target.subjectPrefix, keyPrefix: '' }),
    subjectPrefix: target.subjectPrefix,
    publishTimeoutMs: options.publishTimeoutMs ?? 5000,
    signer: options.signer,
    acceptUnsigned: options.acceptUnsigned ?? false,
    now: options.now ?? (() => new Date()),
  };
}

/** A short-lived connection for the CLI: fails at once (nats_unreachable) instead of retrying forever. */
export async function connectForReplay(url: string, timeoutMs = 5000): Promise<NatsConnection> {
  try {
    return await connect({
      servers: url.split(',').map((s) => s.trim()),
      name: 'replay',
      timeout: timeoutMs,
      maxReconnectAttempts: 2,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    throw new ReplayError('nats_unreachable', `cannot reach NATS at ${url}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Messages as read from a stream
// ---------------------------------------------------------------------------------------------

export interface StoredJob {
  stream: string;
  seq: number;
  subject: string;
  /** The JetStream timestamp (publication time), ISO-8601. */
  time: string;
  headers: Record<string, string[]>;
  data: Uint8Array;
}

function headerRecord(h: MsgHdrs | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!h) return out;
  for (const [key, values] of h) out[key] = [...(out[key] ?? []), ...values];
  return out;
}

function fromJsMsg(stream: string, m: JsMsg): StoredJob {
  return {
    stream,
    seq: m.seq,
    subject: m.subject,
    time: new Date(m.info.timestampNanos / 1e6).toISOString(),
    headers: headerRecord(m.headers),
    data: m.data,
  };
}

function fromStoredMsg(stream: string, m: StoredMsg): StoredJob {
  return {
    stream,
    seq: m.seq,
    subject: m.subject,
    time: m.time.toISOString(),
    headers: headerRecord(m.header),
    data: m.data,
  };
}

/** First value of a header, case-insensitive (header names are case-insensitive on the wire). */
export function headerValue(job: Pick<StoredJob, 'headers'>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [key, values] of Object.entries(job.headers)) if (key.toLowerCase() === lower) return values[0];
  return undefined;
}

function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10059;
}

function streamMissing(stream: string, err: unknown): ReplayError {
  return new ReplayError(
    'stream_not_found',
    `stream ${stream} does not exist (check TASKS_NATS__STREAM; workers and \`npm run provision\` create it)`,
    { cause: err },
  );
}

/**
 * Every message of `stream` matching `filter` from `startTime` (or the first message), in stream
 * order, through an ordered consumer. It stops at the stream's last message as of the call, so
 * messages published while it runs (the replays themselves) are never read back.
 */
export async function* scanStream(
  ctx: ReplayContext,
  stream: string,
  filter: string,
  startTime?: Date,
): AsyncGenerator<StoredJob> {
  let lastSeq: number;
  try {
    const info = await ctx.jsm.streams.info(stream);
    if (info.state.messages === 0) return;
    lastSeq = info.state.last_seq;
  } catch (err) {
    if (isStreamNotFound(err)) throw streamMissing(stream, err);
    throw err;
  }
  const consumer = await ctx.js.consumers.get(stream, {
    filter_subjects: filter,
    ...(startTime === undefined ? {} : { opt_start_time: startTime.toISOString() }),
  });
  try {
    if ((await consumer.info(true)).num_pending === 0) return;
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 256, expires: 3000 });
      let received = 0;
      for await (const m of batch) {
        received++;
        if (m.seq > lastSeq) return;
        yield fromJsMsg(stream, m);
        if (m.info.pending === 0) return;
      }
      // Nothing came although messages were pending: they expired or were deleted meanwhile.
      if (received === 0) return;
    }
  } finally {
    await consumer.delete().catch(() => false);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading jobs
// ---------------------------------------------------------------------------------------------

export interface JobSummary {
  seq: number;
  subject: string;
  /** Last subject token; null when the subject is not `<prefix>.<queue>.<id>`. */
  taskId: string | null;
  queue: string | null;
  time: string;
  task: string | null;
  owner: string | null;
  requestId: string | null;
  /** Set when this message is itself a replay (`npm run replay`). */
  replayOf: string | null;
  /** `<reason>: <detail>` when the message is not a valid task (it cannot be replayed as it is). */
  poison: string | null;
}

/** The stored message as a worker would see it: signature first, unless the operator vouches. */
function parseStored(ctx: ReplayContext, job: StoredJob, subject: string) {
  const signature = ctx.acceptUnsigned
    ? null
    : { signer: ctx.signer, header: headerValue(job, HEADERS.taskSignature) };
  return parseTaskMessage(subject, job.data, ctx.names, signature);
}

export function summarize(ctx: ReplayContext, job: StoredJob, subject = job.subject): JobSummary {
  const parts = ctx.names.parseTaskSubject(subject);
  const parsed = parseStored(ctx, job, subject);
  const body = parsed.ok ? parsed.envelope : parsed.envelope;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    seq: job.seq,
    subject,
    taskId: parts?.taskId ?? null,
    queue: parts?.queue ?? null,
    time: job.time,
    task: headerValue(job, HEADERS.taskName) ?? str(body?.task),
    owner: str(body?.userId),
    requestId: headerValue(job, HEADERS.requestId) ?? str(body?.requestId),
    replayOf: headerValue(job, HEADERS.replayOf) ?? null,
    poison: parsed.ok ? null : `${parsed.reason}: ${parsed.detail}`,
  };
}

export interface ListOptions {
  queue?: QueueName | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Most jobs returned, oldest first (default 100). */
  limit?: number | undefined;
}

export interface JobList {
  jobs: JobSummary[];
  /** More jobs match than `limit`. */
  truncated: boolean;
}

export async function listJobs(ctx: ReplayContext, options: ListOptions = {}): Promise<JobList> {
  const limit = options.limit ?? 100;
  const filter = options.queue ? ctx.names.queueFilter(options.queue) : ctx.names.streamSubjects;
  const jobs: JobSummary[] = [];
  for await (const job of scanStream(ctx, ctx.names.stream, filter, options.since)) {
    if (options.until && Date.parse(job.time) > options.until.getTime()) break;
    if (jobs.length === limit) return { jobs, truncated: true };
    jobs.push(summarize(ctx, job));
  }
  return { jobs, truncated: false };
}

function checkTaskId(taskId: string): void {
  if (!isTaskId(taskId)) {
    throw new ReplayError('bad_arguments', `"${taskId}" is not a task id (letters, digits, - and _)`);
  }
}

/** The stored message of a task id (`<prefix>.*.<id>`, the newest if there are several). */
export async function findTask(ctx: ReplayContext, taskId: string): Promise<StoredJob> {
  checkTaskId(taskId);
  const { stream } = ctx.names;
  let subjects: string[];
  try {
    const info = await ctx.jsm.streams.info(stream, { subjects_filter: `${ctx.subjectPrefix}.*.${taskId}` });
    subjects = Object.keys(info.state.subjects ?? {});
  } catch (err) {
    if (isStreamNotFound(err)) throw streamMissing(stream, err);
    throw err;
  }
  let found: StoredMsg | null = null;
  for (const subject of subjects) {
    const m = await ctx.jsm.streams.getMessage(stream, { last_by_subj: subject });
    if (m && (found === null || m.seq > found.seq)) found = m;
  }
  if (found === null) {
    throw new ReplayError(
      'task_not_found',
      `no message for task ${taskId} in stream ${stream} (unknown id, or older than the stream's max age)`,
    );
  }
  return fromStoredMsg(stream, found);
}

export interface ShownJob extends JobSummary {
  stream: string;
  headers: Record<string, string[]>;
  /** The body as JSON, or as text when it is not JSON. */
  body: unknown;
}

export async function showTask(ctx: ReplayContext, taskId: string): Promise<ShownJob> {
  const job = await findTask(ctx, taskId);
  const text = Buffer.from(job.data).toString('utf8');
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: shown as text (and flagged as poison by summarize)
  }
  return { ...summarize(ctx, job), stream: job.stream, headers: job.headers, body };
}

// ---------------------------------------------------------------------------------------------
// Replaying
// ---------------------------------------------------------------------------------------------

export type ReplayStatus = 'replayed' | 'would_replay' | 'skipped';

export interface ReplayResult {
  status: ReplayStatus;
  /** The task id of the stored message (null when its subject has none). */
  oldId: string | null;
  /** The new task id; null when skipped or in a dry run. */
  newId: string | null;
  queue: string | null;
  task: string | null;
  owner: string | null;
  /** Where the replay went: `<prefix>.<queue>.<new id>`. */
  subject: string | null;
  /** Stream sequence of the message replayed (in TASKS, or in TASKS_DLQ for `dlq`). */
  sourceSeq: number;
  /** Stream sequence of the new message (PubAck). */
  seq: number | null;
  /** Why a message was skipped: `<poison reason>: <detail>`. */
  reason: string | null;
  /** `dlq` only: the Dlq-Reason of the dead letter, and whether it was deleted after the PubAck. */
  dlqReason?: string | null;
  purged?: boolean;
}

export interface ReplayReport {
  results: ReplayResult[];
  replayed: number;
  skipped: number;
  purged: number;
}

function report(results: ReplayResult[]): ReplayReport {
  return {
    results,
    replayed: results.filter((r) => r.status === 'replayed' || r.status === 'would_replay').length,
    skipped: results.filter((r) => r.status === 'skipped').length,
    purged: results.filter((r) => r.purged === true).length,
  };
}

/**
 * Republishes one stored task under a new id: same body but `submittedAt` (the replay time), the
 * headers a gateway would set, plus Replay-Of; waits for the PubAck. `subject` is the task subject
 * the message was published on (for a dead letter: its Dlq-Orig-Subject).
 */
export async function republish(
  ctx: ReplayContext,
  job: StoredJob,
  subject: string,
  dryRun = false,
): Promise<ReplayResult> {
  const parsed = parseStored(ctx, job, subject);
  const summary = summarize(ctx, job, subject);
  const base = {
    oldId: summary.taskId,
    queue: summary.queue,
    task: summary.task,
    owner: summary.owner,
    sourceSeq: job.seq,
  };
  if (!parsed.ok) {
    return { ...base, status: 'skipped', newId: null, subject: null, seq: null, reason: summary.poison };
  }
  const envelopeFacts = {
    queue: parsed.envelope.queue,
    task: parsed.envelope.task,
    owner: parsed.envelope.userId,
    seq: null,
    reason: null,
  };
  if (dryRun) return { ...base, ...envelopeFacts, status: 'would_replay', newId: null, subject: null };
  const now = ctx.now();
  const newId = newTaskId(now.getTime());
  const envelope: TaskEnvelope = { ...parsed.envelope, submittedAt: now.toISOString() };
  const target = ctx.names.taskSubject(envelope.queue, newId);
  const result: ReplayResult = { ...base, ...envelopeFacts, status: 'replayed', newId, subject: target };
  const h = natsHeaders();
  h.set(HEADERS.taskName, envelope.task);
  h.set(HEADERS.schemaVersion, String(envelope.v));
  const requestId = envelope.requestId ?? headerValue(job, HEADERS.requestId);
  if (requestId) h.set(HEADERS.requestId, requestId);
  h.set(HEADERS.replayOf, parsed.taskId);
  const body = JSON.stringify(envelope);
  h.set(HEADERS.taskSignature, ctx.signer.sign(newId, body));
  try {
    const ack = await ctx.js.publish(target, body, {
      msgID: newId,
      headers: h,
      timeout: ctx.publishTimeoutMs,
    });
    result.seq = ack.seq;
  } catch (err) {
    throw new ReplayError(
      'publish_failed',
      `publishing the replay of ${parsed.taskId} to ${target} was not acknowledged: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  return result;
}

export interface BatchOptions {
  dryRun?: boolean | undefined;
  /** Called once per message, as soon as it is handled (the CLI prints progress with it). */
  onResult?: ((result: ReplayResult) => void) | undefined;
}

/** `task <id>`: replays one job. */
export async function replayTask(
  ctx: ReplayContext,
  taskId: string,
  options: BatchOptions = {},
): Promise<ReplayResult> {
  const job = await findTask(ctx, taskId);
  const result = await republish(ctx, job, job.subject, options.dryRun);
  options.onResult?.(result);
  return result;
}

export interface WindowOptions extends BatchOptions {
  since: Date;
  until: Date;
  queue?: QueueName | undefined;
}

/** `window`: replays every job whose JetStream timestamp is in [since, until], in stream order. */
export async function replayWindow(ctx: ReplayContext, options: WindowOptions): Promise<ReplayReport> {
  if (options.since.getTime() > options.until.getTime()) {
    throw new ReplayError(
      'bad_arguments',
      `--since (${options.since.toISOString()}) is after --until (${options.until.toISOString()})`,
    );
  }
  const filter = options.queue ? ctx.names.queueFilter(options.queue) : ctx.names.streamSubjects;
  const results: ReplayResult[] = [];
  for await (const job of scanStream(ctx, ctx.names.stream, filter, options.since)) {
    if (Date.parse(job.time) > options.until.getTime()) break;
    const result = await republish(ctx, job, job.subject, options.dryRun);
    results.push(result);
    options.onResult?.(result);
  }
  return report(results);
}

export interface DlqOptions extends BatchOptions {
  /** Only dead letters with this Dlq-Reason (e.g. max_deliveries). */
  reason?: string | undefined;
  taskId?: string | undefined;
  queue?: QueueName | undefined;
  /** Delete each dead letter once its replay is acknowledged (never before, never when skipped). */
  purge?: boolean | undefined;
}

/** `dlq`: republishes each dead letter's body to its original queue under a new id. */
export async function redriveDlq(ctx: ReplayContext, options: DlqOptions = {}): Promise<ReplayReport> {
  if (options.taskId !== undefined) checkTaskId(options.taskId);
  if (options.purge && options.dryRun) {
    throw new ReplayError('bad_arguments', '--purge and --dry-run exclude each other');
  }
  const { names } = ctx;
  const filter =
    options.taskId !== undefined
      ? names.dlqSubject(`${ctx.subjectPrefix}.*.${options.taskId}`)
      : options.queue
        ? names.dlqSubject(names.queueFilter(options.queue))
        : names.dlqSubjects;
  const results: ReplayResult[] = [];
  for await (const job of scanStream(ctx, names.dlqStream, filter)) {
    const dlqReason = headerValue(job, HEADERS.dlqReason) ?? null;
    if (options.reason !== undefined && dlqReason !== options.reason) continue;
    const dlqPrefix = names.dlqSubject('');
    const original =
      headerValue(job, HEADERS.dlqOrigSubject) ??
      (job.subject.startsWith(dlqPrefix) ? job.subject.slice(dlqPrefix.length) : job.subject);
    const result: ReplayResult = {
      ...(await republish(ctx, job, original, options.dryRun)),
      dlqReason,
      purged: false,
    };
    if (result.status === 'replayed' && options.purge) {
      // Only now: the replay is durable in the task stream (PubAck received).
      result.purged = await ctx.jsm.streams.deleteMessage(names.dlqStream, job.seq);
    }
    results.push(result);
    options.onResult?.(result);
  }
  return report(results);
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/;
const DURATION_PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;

/** `90s`, `15m`, `1h30m`, `7d`: milliseconds; null when not a duration. */
export function parseDuration(value: string): number | null {
  if (!DURATION_RE.test(value)) return null;
  let ms = 0;
  for (const m of value.matchAll(DURATION_PART_RE)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  return ms;
}

/** A point in time: a duration means that long before `now`; otherwise an ISO-8601 date/time. */
export function parseTimeArg(flag: string, value: string, now: Date): Date {
  const trimmed = value.trim();
  const ms = parseDuration(trimmed);
  if (ms !== null) return new Date(now.getTime() - ms);
  const t = /^\d{4}-\d{2}-\d{2}/.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(t)) {
    throw new ReplayError(
      'bad_arguments',
      `${flag} "${value}" is neither a duration (90s, 15m, 1h30m, 2d) nor an ISO-8601 time`,
    );
  }
  return new Date(t);
}
