// Publishes a task: meta first (so GET /tasks/{id} can answer 202 for it at once), then the
// JetStream message with the task id as the subject's last token and as Nats-Msg-Id. The publish
// waits for the PubAck: an accepted task is durable in the stream before the client hears of it.
import type { JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import {
  HEADERS,
  type Names,
  SCHEMA_VERSION,
  TASKS,
  type TaskEnvelope,
  type TaskName,
} from '@neuroagent/contracts';
import { type Logger, newTaskId, type TaskStore } from '@neuroagent/platform';
import { HttpError } from './http-error.ts';
import { inputDigest, type Ledger } from './ledger/ledger.ts';

export interface SubmitRequest {
  task: TaskName;
  input: unknown;
  owner: string;
  threadId?: string | undefined;
  requestId?: string | undefined;
}

export interface SubmitterOptions {
  /** The durable task ledger: a submission is recorded there before it is published. */
  ledger: Pick<Ledger, 'recordSubmitted' | 'applyEvent'>;
  js: JetStreamClient;
  names: Names;
  store: TaskStore;
  deadlineS: number;
  publishTimeoutMs: number;
  log: Logger;
}

export function createTaskSubmitter(opts: SubmitterOptions) {
  const { js, names, store, log } = opts;
  return {
    async submit(req: SubmitRequest): Promise<{ taskId: string; queue: string }> {
      const taskId = newTaskId();
      const queue = TASKS[req.task].queue;
      const now = new Date();
      const envelope: TaskEnvelope = {
        v: SCHEMA_VERSION,
        queue,
        task: req.task,
        input: req.input,
        userId: req.owner,
        submittedAt: now.toISOString(),
        startWithinS: opts.deadlineS,
      };
      if (req.threadId !== undefined) envelope.threadId = req.threadId;
      if (req.requestId !== undefined) envelope.requestId = req.requestId;

      try {
        await store.writeSubmitted(taskId, {
          owner: req.owner,
          queue,
          task: req.task,
          submittedAt: envelope.submittedAt,
          threadId: req.threadId,
          requestId: req.requestId,
        });
      } catch (err) {
        throw new HttpError(
          503,
          'result_backend_unavailable',
          'Redis is not reachable; the task was not submitted',
          {
            cause: err,
          },
        );
      }

      try {
        await opts.ledger.recordSubmitted({
          id: taskId,
          owner: req.owner,
          queue,
          task: req.task,
          submittedAt: now,
          inputDigest: inputDigest(req.input),
        });
      } catch (err) {
        await store.forget(taskId).catch(() => {});
        throw new HttpError(
          503,
          'ledger_unavailable',
          'the task ledger (database) is not reachable; the task was not submitted',
          {
            cause: err,
          },
        );
      }

      const h = natsHeaders();
      h.set(HEADERS.taskName, req.task);
      h.set(HEADERS.schemaVersion, String(SCHEMA_VERSION));
      if (req.requestId) h.set(HEADERS.requestId, req.requestId);
      try {
        const ack = await js.publish(names.taskSubject(queue, taskId), JSON.stringify(envelope), {
          msgID: taskId,
          headers: h,
          timeout: opts.publishTimeoutMs,
        });
        log.info({ taskId, task: req.task, queue, seq: ack.seq, requestId: req.requestId }, 'task submitted');
      } catch (err) {
        await store.forget(taskId).catch(() => {});
        // The ledger row must not stay pending for a task that never entered the queue.
        await opts.ledger
          .applyEvent({ taskId, status: 'failed', ts: new Date().toISOString(), code: 'queue_unavailable' })
          .catch((e: unknown) => log.error({ err: e, taskId }, 'could not mark the unpublished task failed'));
        throw new HttpError(
          503,
          'queue_unavailable',
          'the task queue (NATS JetStream) did not accept the task',
          {
            cause: err,
          },
        );
      }
      return { taskId, queue };
    },
  };
}

export type TaskSubmitter = ReturnType<typeof createTaskSubmitter>;
