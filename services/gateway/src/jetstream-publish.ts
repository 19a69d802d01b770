// One task publish, retried while JetStream has nobody to store it: during a stream leader
// election (a node of a cluster died) the server answers "no responders" at once, and a new leader
// usually takes a few seconds to appear. Retrying within the publish budget turns those seconds
// into slower answers instead of 503s. An attempt that gets no answer at all (the node this
// connection used died with the request in flight; the client reconnects to another) is cut short
// by a per-attempt timeout and sent again, instead of waiting out the whole budget. Retries are
// safe: the message id (Nats-Msg-Id) makes the stream store one copy whatever the number of
// attempts, within its duplicate window.
import { setTimeout as sleep } from 'node:timers/promises';
import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import { errors, type MsgHdrs } from '@nats-io/nats-core';
import {
  ATTR,
  errorCode,
  injectTraceHeaders,
  type Span,
  SpanKind,
  tracingEnabled,
  withSpan,
} from '@neuroagent/platform';
import { type PubAckMux, PublishNoRespondersError } from './pub-ack-mux.ts';

export interface PublishOptions {
  msgID: string;
  headers: MsgHdrs;
  /** The whole budget, every attempt included (NEUROAGENT_NATS__PUBLISH_TIMEOUT_MS). */
  timeoutMs: number;
  /** Pause between attempts (NEUROAGENT_NATS__PUBLISH_RETRY_MS). */
  retryMs: number;
  /** Longest wait for one attempt's PubAck (NEUROAGENT_NATS__PUBLISH_ATTEMPT_TIMEOUT_MS). */
  attemptTimeoutMs: number;
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
  if (err instanceof PublishNoRespondersError) return true;
  // 503 from the JetStream API: "JetStream system temporarily unavailable" and the like.
  return err instanceof JetStreamApiError && err.status === 503;
}

/**
 * One PRODUCER span over every attempt; its context goes out in the message's `traceparent` and
 * `tracestate` headers (outside the Task-Signature, which covers the task id and body only).
 */
export function publishWithRetry(
  mux: PubAckMux,
  subject: string,
  body: string,
  opts: PublishOptions,
): Promise<PubAck> {
  if (!tracingEnabled()) return publishAttempts(mux, subject, body, opts, undefined);
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
    const ack = await publishAttempts(mux, subject, body, opts, span);
    span?.setAttribute(ATTR.jetstreamSeq, ack.seq);
    return ack;
  });
}

async function publishAttempts(
  mux: PubAckMux,
  subject: string,
  body: string,
  opts: PublishOptions,
  span: Span | undefined,
): Promise<PubAck> {
  const deadline = performance.now() + opts.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    const left = Math.max(1, Math.round(deadline - performance.now()));
    const timeoutMs = Math.min(left, opts.attemptTimeoutMs);
    try {
      return await mux.publish(subject, body, { msgID: opts.msgID, headers: opts.headers, timeoutMs });
    } catch (err) {
      // Any error other than these two is an answer that will not change.
      const unanswered = err instanceof errors.TimeoutError;
      if (!unanswered && !isLeaderless(err)) throw err;
      // An unanswered attempt already waited; a leaderless answer came at once, so pause first.
      const pause = unanswered ? 0 : opts.retryMs;
      if (deadline - performance.now() <= Math.max(pause, 1)) throw err;
      span?.addEvent('retry', { attempt, [ATTR.errorType]: errorCode(err) });
      opts.onRetry?.(attempt, err);
      if (pause > 0) await sleep(pause);
    }
  }
}
