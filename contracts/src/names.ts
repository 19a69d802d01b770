// Every name that crosses a process boundary: JetStream stream, subjects, consumer names, message
// headers and Redis keys. Build them only through createNames(), never by string concatenation
// elsewhere. Imports only the QueueName type (queues come from the task registry, tasks.ts).
import type { QueueName } from './tasks.ts';

export const DEFAULT_STREAM = 'TASKS';
export const DEFAULT_SUBJECT_PREFIX = 'tasks';

// Headers of a task message (docs/reliability.md). The body never carries the task id: it is the subject's
// last token, repeated in Nats-Msg-Id, so a replay is a plain republish under a new id.
export const HEADERS = {
  msgId: 'Nats-Msg-Id',
  taskName: 'Task-Name',
  schemaVersion: 'Schema-Version',
  /** W3C trace context of the gateway's publish span (docs/operations.md, "Tracing"); unsigned. */
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  requestId: 'Request-Id',
  /** HMAC of the task id and the body under the key the gateway shares with the workers. */
  taskSignature: 'Task-Signature',
  dlqReason: 'Dlq-Reason',
  dlqDetail: 'Dlq-Detail',
  dlqOrigSubject: 'Dlq-Orig-Subject',
  dlqOrigSeq: 'Dlq-Orig-Seq',
  dlqDeliveries: 'Dlq-Deliveries',
  /** Set by `npm run replay`: the task id this message is a replay of. Informational only. */
  replayOf: 'Replay-Of',
} as const;

// A task id must be a single NATS subject token and a safe Redis key part.
export const TASK_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
const TASK_ID_RE = new RegExp(TASK_ID_PATTERN);

export function isTaskId(value: string): boolean {
  return TASK_ID_RE.test(value);
}

export interface NameOptions {
  /** JetStream stream holding every task message. */
  stream: string;
  /** First subject token(s) of task messages; the stream captures `<prefix>.>`. */
  subjectPrefix: string;
  /** Prepended to every Redis key, so test runs and tenants can share one Redis. */
  keyPrefix: string;
  /**
   * Shards of the global `tasks:events` stream (default 1: the one key `tasks:events`). More than
   * one spreads the feed over a Redis Cluster's primaries; every gateway and worker must agree.
   */
  eventsShards?: number;
}

export const MAX_EVENTS_SHARDS = 1024;

export interface Names {
  readonly stream: string;
  readonly dlqStream: string;
  readonly streamSubjects: string;
  readonly dlqSubjects: string;
  taskSubject(queue: QueueName, taskId: string): string;
  queueFilter(queue: QueueName): string;
  consumerName(queue: QueueName): string;
  /** The dead-letter copy of a message keeps its whole original subject after `dlq.`. */
  dlqSubject(originalSubject: string): string;
  cancelSubject(taskId: string): string;
  /** Splits `<prefix>.<queue>.<id>`; null when the subject is not a task subject. */
  parseTaskSubject(subject: string): { queue: string; taskId: string } | null;
  progressKey(taskId: string): string;
  resultKey(taskId: string): string;
  metaKey(taskId: string): string;
  cancelKey(taskId: string): string;
  /** JetStream key-value bucket of the queues' pause state (one key per queue). */
  readonly controlBucket: string;
  /** Redis hash of the worker processes consuming a queue: field = worker id, value = heartbeat JSON. */
  workersKey(queue: QueueName): string;
  /** Every shard of `tasks:events`, in shard order: what the gateway's readers tail. */
  eventsKeys(): readonly string[];
  /** Redis Stream of one agent turn's events: what its SSE streams read and resume from. */
  turnEventsKey(turnId: string): string;
  /** Present while some client streams the turn (each stream refreshes it): see docs/agent.md. */
  turnWatchKey(turnId: string): string;
  /** Set by DELETE /threads/{id}/turn on any gateway; the one running the turn stops it. */
  turnCancelKey(turnId: string): string;
  /** Core NATS subject the gateway running a turn listens on, to stop it at once. */
  turnCancelSubject(turnId: string): string;
  /** The shard a task's status changes are appended to (a pure function of its id). */
  eventsKeyOf(taskId: string): string;
}

/** FNV-1a over the id's UTF-16 code units: stable across processes and versions, cheap, even. */
export function eventsShardOf(taskId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < taskId.length; i++) h = Math.imul(h ^ taskId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

export function createNames(opts: NameOptions): Names {
  const { stream, subjectPrefix, keyPrefix } = opts;
  const shards = opts.eventsShards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_EVENTS_SHARDS)
    throw new RangeError(`eventsShards must be an integer from 1 to ${MAX_EVENTS_SHARDS}, got ${shards}`);
  const prefixTokens = subjectPrefix.split('.').length;
  // Braces around the id are a Redis Cluster hash tag: every key of one task hashes to the same
  // slot, so the worker's MULTI and begin script over them stay atomic there. Outside a cluster
  // they are plain characters. A shard's number is its own hash tag, so shards spread over slots.
  const eventsKeys = Object.freeze(
    shards === 1
      ? [`${keyPrefix}tasks:events`]
      : Array.from({ length: shards }, (_, n) => `${keyPrefix}tasks:events:{${n}}`),
  );
  return {
    stream,
    dlqStream: `${stream}_DLQ`,
    streamSubjects: `${subjectPrefix}.>`,
    dlqSubjects: `dlq.${subjectPrefix}.>`,
    taskSubject: (queue, taskId) => `${subjectPrefix}.${queue}.${taskId}`,
    queueFilter: (queue) => `${subjectPrefix}.${queue}.>`,
    consumerName: (queue) => queue,
    dlqSubject: (originalSubject) => `dlq.${originalSubject}`,
    cancelSubject: (taskId) => `ctl.cancel.${taskId}`,
    parseTaskSubject(subject) {
      if (!subject.startsWith(`${subjectPrefix}.`)) return null;
      const tokens = subject.split('.');
      if (tokens.length !== prefixTokens + 2) return null;
      const queue = tokens[prefixTokens];
      const taskId = tokens[prefixTokens + 1];
      if (queue === undefined || taskId === undefined) return null;
      return { queue, taskId };
    },
    progressKey: (taskId) => `${keyPrefix}task:{${taskId}}:progress`,
    resultKey: (taskId) => `${keyPrefix}task:{${taskId}}:result`,
    metaKey: (taskId) => `${keyPrefix}task:{${taskId}}:meta`,
    cancelKey: (taskId) => `${keyPrefix}task:{${taskId}}:cancel`,
    controlBucket: `${stream}_CONTROL`,
    workersKey: (queue) => `${keyPrefix}workers:{${queue}}`,
    eventsKeys: () => eventsKeys,
    turnEventsKey: (turnId) => `${keyPrefix}turn:{${turnId}}:events`,
    turnWatchKey: (turnId) => `${keyPrefix}turn:{${turnId}}:watch`,
    turnCancelKey: (turnId) => `${keyPrefix}turn:{${turnId}}:cancel`,
    turnCancelSubject: (turnId) => `ctl.turn.cancel.${turnId}`,
    eventsKeyOf: (taskId) => eventsKeys[shards === 1 ? 0 : eventsShardOf(taskId, shards)] as string,
  };
}
