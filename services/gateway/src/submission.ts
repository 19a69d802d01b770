// Submitting a task, the one path of POST /tasks and every tool route:
//   1. the Idempotency-Key is claimed (idempotency.ts): a repeated request gets the earlier task;
//   2. a waiter is registered before the publish, so even an instant result cannot be missed;
//   3. Redis meta (so GET /tasks/{id} answers 202 at once) and the ledger row are written, then the
//      JetStream message, with the task id as the subject's last token and as Nats-Msg-Id. The
//      publish waits for the PubAck: an accepted task is durable in the stream before the client
//      hears of it;
//   4. the route's wait, up to `waitS`, for the task to end; its record usually comes with the
//      worker's event (no read back).
import { headers as natsHeaders } from '@nats-io/nats-core';
import {
  HEADERS,
  isTerminal,
  type Names,
  SCHEMA_VERSION,
  TASKS,
  type TaskEnvelope,
  type TaskName,
} from '@neuroagent/contracts';
import { errorMessage, type Logger, newTaskId, type TaskReader, type TaskSigner } from '@neuroagent/platform';
import type { Context } from 'koa';
import type { CompletionWatch } from './completion-watch.ts';
import { HttpError } from './http-error.ts';
import type { IdempotencyKeys } from './idempotency.ts';
import { publishWithRetry } from './jetstream-publish.ts';
import { inputDigest, type Ledger } from './ledger/ledger.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { PubAckMux } from './pub-ack-mux.ts';
import { type StageTimer, timingOf } from './server-timing.ts';
import { clientGone, type OwnedRecord, type RecordDeps, readAnyRecord, readRecord } from './task-io.ts';

export interface SubmitRequest {
  /** Set when the caller registers a waiter before publishing; a new UUIDv7 otherwise. */
  taskId?: string;
  task: TaskName;
  input: unknown;
  owner: string;
  threadId?: string | undefined;
  requestId?: string | undefined;
  /** The caller logs the submission itself (a route: in its `request` line), so it is only debug here. */
  quiet?: boolean;
}

/** A task accepted by JetStream: its id, queue and stream sequence. */
export interface SubmittedTask {
  taskId: string;
  queue: string;
  seq: number;
}

export interface SubmitterOptions {
  /** The durable task ledger: a submission is recorded there before it is published. */
  ledger: Pick<Ledger, 'recordSubmitted' | 'applyEvent'>;
  /** Publishes to JetStream and routes the PubAcks back (one subscription for all). */
  publisher: PubAckMux;
  names: Names;
  store: Pick<TaskReader, 'writeSubmitted' | 'forget' | 'flagCancel'>;
  /** The envelope's startWithinS: a task not started this long after its publish expires. */
  startWithinS: number;
  publishTimeoutMs: number;
  /** Pause between publish attempts while the stream has no leader. */
  publishRetryMs: number;
  /** Longest wait for one attempt's PubAck before it is sent again. */
  publishAttemptTimeoutMs: number;
  /** Signs each message (Task-Signature); workers dead-letter what does not verify. */
  signer: TaskSigner;
  log: Logger;
}

export function createTaskSubmitter(opts: SubmitterOptions) {
  const { publisher, names, store, log } = opts;

  /** The ledger row must not stay pending for a task that never entered the queue. */
  async function markUnpublished(taskId: string, code: string): Promise<void> {
    await opts.ledger
      .applyEvent({ taskId, status: 'failed', ts: new Date().toISOString(), code })
      .catch((err: unknown) => log.error({ err, taskId }, 'could not mark the unpublished task failed'));
  }

  return {
    /** `timing` receives the stages meta, ledger and publish (the request's Server-Timing). */
    async submit(req: SubmitRequest, timing: StageTimer): Promise<SubmittedTask> {
      const taskId = req.taskId ?? newTaskId();
      const queue = TASKS[req.task].queue;
      const now = new Date();
      const envelope: TaskEnvelope = {
        v: SCHEMA_VERSION,
        queue,
        task: req.task,
        input: req.input,
        userId: req.owner,
        submittedAt: now.toISOString(),
        startWithinS: opts.startWithinS,
      };
      if (req.threadId !== undefined) envelope.threadId = req.threadId;
      if (req.requestId !== undefined) envelope.requestId = req.requestId;

      // Redis meta (so GET /tasks/{id} answers 202 at once) and the ledger row, side by side: both
      // must exist before the publish, and neither depends on the other.
      const [meta, row] = await Promise.allSettled([
        timing.time('meta', () =>
          store.writeSubmitted(taskId, {
            owner: req.owner,
            queue,
            task: req.task,
            submittedAt: envelope.submittedAt,
            threadId: req.threadId,
            requestId: req.requestId,
          }),
        ),
        timing.time('ledger', () =>
          opts.ledger.recordSubmitted({
            id: taskId,
            owner: req.owner,
            queue,
            task: req.task,
            submittedAt: now,
            inputDigest: inputDigest(req.input),
          }),
        ),
      ]);
      if (meta.status === 'rejected' || row.status === 'rejected') {
        if (meta.status === 'fulfilled') await store.forget(taskId).catch(() => {});
        if (row.status === 'fulfilled') await markUnpublished(taskId, 'result_backend_unavailable');
        if (meta.status === 'rejected') {
          throw new HttpError(
            503,
            'result_backend_unavailable',
            'Redis is not reachable; the task was not submitted',
            { cause: meta.reason },
          );
        }
        throw new HttpError(
          503,
          'ledger_unavailable',
          'the task ledger (database) is not reachable; the task was not submitted',
          { cause: (row as PromiseRejectedResult).reason },
        );
      }

      const body = JSON.stringify(envelope);
      const h = natsHeaders();
      h.set(HEADERS.taskSignature, opts.signer.sign(taskId, body));
      h.set(HEADERS.taskName, req.task);
      h.set(HEADERS.schemaVersion, String(SCHEMA_VERSION));
      if (req.requestId) h.set(HEADERS.requestId, req.requestId);
      let seq = 0;
      try {
        const ack = await timing.time('publish', () =>
          publishWithRetry(publisher, names.taskSubject(queue, taskId), body, {
            msgID: taskId,
            headers: h,
            queue,
            task: req.task,
            timeoutMs: opts.publishTimeoutMs,
            retryMs: opts.publishRetryMs,
            attemptTimeoutMs: opts.publishAttemptTimeoutMs,
            onRetry: (attempt, err) =>
              log.warn(
                { taskId, attempt, err: errorMessage(err) },
                'publish not acknowledged: publishing again',
              ),
          }),
        );
        const line = { taskId, task: req.task, queue, seq: ack.seq, requestId: req.requestId };
        if (req.quiet) log.debug(line, 'task submitted');
        else log.info(line, 'task submitted');
        seq = ack.seq;
      } catch (err) {
        // A publish that timed out may still reach the stream (NATS stored it but the PubAck was
        // lost, or the server was frozen and caught up later). The client hears 503, so the task
        // must never run: a worker that receives it sees this flag and records it cancelled instead.
        await store.flagCancel(taskId).catch(() => {});
        await store.forget(taskId).catch(() => {});
        await markUnpublished(taskId, 'queue_unavailable');
        throw new HttpError(
          503,
          'queue_unavailable',
          'the task queue (NATS JetStream) did not accept the task',
          {
            cause: err,
          },
        );
      }
      return { taskId, queue, seq };
    },
  };
}

export type TaskSubmitter = ReturnType<typeof createTaskSubmitter>;

/** What a route needs to submit a task and wait for it. */
export interface SubmitDeps extends RecordDeps {
  submitter: TaskSubmitter;
  completions: CompletionWatch;
  idempotency: IdempotencyKeys;
  metrics: Pick<GatewayMetrics, 'tasksSubmitted'>;
}

export interface RouteSubmission {
  task: TaskName;
  input: unknown;
  threadId?: string | undefined;
  /** What makes two requests with one Idempotency-Key the same request (the parsed body). */
  request: unknown;
}

export interface Submitted {
  taskId: string;
  /** The final record when the task ended within `waitS` seconds, else null. */
  record: OwnedRecord | null;
  /** The record as it is now when the task has not ended (null when Redis has none yet). */
  current: OwnedRecord | null;
}

/** The route side of a submission: claim, submit (unless an earlier request did), wait. */
export async function submitFromRoute(
  ctx: Context,
  deps: SubmitDeps,
  req: RouteSubmission,
  waitS: number,
): Promise<Submitted> {
  const claim = await deps.idempotency.claim(ctx, req.request, newTaskId());
  const { taskId } = claim;
  const ending = waitS > 0 ? deps.completions.expect(taskId) : null;
  try {
    const timing = timingOf(ctx);
    if (claim.fresh) {
      try {
        const { queue, seq } = await deps.submitter.submit(
          {
            task: req.task,
            input: req.input,
            threadId: req.threadId,
            taskId,
            owner: ctx.state.userId,
            requestId: ctx.state.requestId,
            quiet: true,
          },
          timing,
        );
        // Logged in the request's own line (app.ts): one line per submission, not two.
        ctx.state.submitted = { taskId, task: req.task, queue, seq };
        deps.metrics.tasksSubmitted.inc({ queue });
      } catch (err) {
        await deps.idempotency.release(ctx, claim.key, taskId);
        throw err;
      }
    } else {
      // The earlier request's task may have ended already: its event is gone, so read, then wait.
      const now = await readAnyRecord(deps, taskId);
      if (now && isTerminal(now.status)) return { taskId, record: now, current: now };
    }
    if (ending && (await timing.time('wait', ending.settled(waitS * 1000, clientGone(ctx))))) {
      const record = ending.record() ?? (await timing.time('read', readRecord(deps, taskId)));
      if (record && isTerminal(record.status)) return { taskId, record, current: record };
    }
    // A fresh task that did not end is pending or running; a repeated request reads what it is now.
    const current = claim.fresh && !ending ? null : await readAnyRecord(deps, taskId);
    if (current && isTerminal(current.status)) return { taskId, record: current, current };
    return { taskId, record: null, current };
  } finally {
    ending?.release();
  }
}

/** The chat thread an input names (run_python's thread_id), stored with the task. */
export function threadIdOf(input: unknown): string | undefined {
  const threadId = (input as { thread_id?: unknown } | null)?.thread_id;
  return typeof threadId === 'string' ? threadId : undefined;
}
