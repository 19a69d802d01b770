// One task publish, retried while JetStream has nobody to store it: during a stream leader
// election (a node of a cluster died) the server answers "no responders" at once, and a new leader
// usually takes a few seconds to appear. Retrying within the publish budget turns those seconds
// into slower answers instead of 503s. Retries are safe: the message id (Nats-Msg-Id) makes the
// stream store one copy whatever the number of attempts, within its duplicate window.
import { setTimeout as sleep } from 'node:timers/promises';
import { JetStreamApiError, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import {
  ATTR,
  errorCode,
  injectTraceHeaders,
  type Span,
  SpanKind,
  tracingEnabled,
  withSpan,
} from '@neuroagent/platform';

export interface PublishOptions {
  msgID: string;
  headers: MsgHdrs;
  /** The whole budget, every attempt included (NEUROAGENT_NATS__PUBLISH_TIMEOUT_MS). */
  timeoutMs: number;
  /** Pause between attempts (NEUROAGENT_NATS__PUBLISH_RETRY_MS). */
  retryMs: number;
  /** Called before each retry, with the error that caused it. */
  onRetry?: (attempt: number, err: unknown) => void;
  /** The task's queue and name: they name and describe the PRODUCER span (tracing). */
  queue?: string;
  task?: string;
}

const PUBLISH_SPAN = {
  kind: SpanKind.PRODUCER,
  attributes: {
    [ATTR.messagingSystem]: 'nats',
    [ATTR.messagingOperationType]: 'send',
    [ATTR.messagingOperationName]: 'publish',
  },
};

/** True for answers that mean "nobody can store this right now", never "stored" or "refused". */
export function isLeaderless(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // No responders on the subject: no stream leader (or no stream) is listening for it.
  if (err.name === 'JetStreamNotEnabled') return true;
  // 503 from the JetStream API: "JetStream system temporarily unavailable" and the like.
  return err instanceof JetStreamApiError && err.status === 503;
}

/**
 * One PRODUCER span over every attempt; its context goes out in the message's `traceparent` and
 * `tracestate` headers (outside the Task-Signature, which covers the task id and body only).
 */
export function publishWithRetry(
  js: JetStreamClient,
  subject: string,
  body: string,
  opts: PublishOptions,
): Promise<PubAck> {
  if (!tracingEnabled()) return publishAttempts(js, subject, body, opts, undefined);
  return withSpan('publish', PUBLISH_SPAN, async (span) => {
    if (span) {
      span.updateName(`publish ${opts.queue ?? subject}`);
      span.setAttributes({
        [ATTR.messagingDestination]: subject,
        [ATTR.messagingMessageId]: opts.msgID,
        [ATTR.messagingBodySize]: Buffer.byteLength(body),
        [ATTR.taskId]: opts.msgID,
      });
      if (opts.queue !== undefined) span.setAttribute(ATTR.taskQueue, opts.queue);
      if (opts.task !== undefined) span.setAttribute(ATTR.taskName, opts.task);
      injectTraceHeaders(opts.headers);
    }
    const ack = await publishAttempts(js, subject, body, opts, span);
    span?.setAttribute(ATTR.jetstreamSeq, ack.seq);
    return ack;
  });
}

async function publishAttempts(
  js: JetStreamClient,
  subject: string,
  body: string,
  opts: PublishOptions,
  span: Span | undefined,
): Promise<PubAck> {
  const deadline = performance.now() + opts.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    const left = Math.max(1, Math.round(deadline - performance.now()));
    try {
      return await js.publish(subject, body, { msgID: opts.msgID, headers: opts.headers, timeout: left });
    } catch (err) {
      // A timeout used the rest of the budget; any other error is an answer that will not change.
      if (!isLeaderless(err) || deadline - performance.now() <= opts.retryMs) throw err;
      span?.addEvent('retry', { attempt, [ATTR.errorType]: errorCode(err) });
      opts.onRetry?.(attempt, err);
      await sleep(opts.retryMs);
    }
  }
}
