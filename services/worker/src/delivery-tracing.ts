// One CONSUMER span per JetStream delivery (docs/operations.md, "Tracing"), continuing the trace
// of the message's `traceparent` (the gateway's publish span). Everything on the message is
// attacker-written, so only bounded or validated values become attributes: the task id when it is
// a valid id, the Task-Name header only when it names a registered task. Settling records the
// outcome. With tracing off, run() calls the handler and settled() returns at once.
import type { JsMsg } from '@nats-io/jetstream';
import { HEADERS, isTaskId, isTaskName, type Names, type QueueName } from '@neuroagent/contracts';
import {
  ATTR,
  extractTraceContext,
  markErrorCode,
  type Span,
  SpanKind,
  tracingEnabled,
  withSpan,
} from '@neuroagent/platform';

export interface DeliveryTracer {
  /** Runs `handle` in the delivery's span, ended once `handle` settles. */
  run(m: JsMsg, handle: () => Promise<void>): Promise<void>;
  /** Records how the message ended (the verb and its reason); an error unless it was acked. */
  settled(m: JsMsg, verdict: { verb: string; reason: string }): void;
}

export function createDeliveryTracer(queue: QueueName, names: Names): DeliveryTracer {
  // By message: stop() settles a handed-back message outside the delivery's async context.
  const spans = new WeakMap<JsMsg, Span>();
  const options = {
    kind: SpanKind.CONSUMER,
    attributes: {
      [ATTR.messagingSystem]: 'nats',
      [ATTR.messagingOperationType]: 'process',
      [ATTR.messagingOperationName]: 'process',
      [ATTR.messagingConsumerGroup]: names.consumerName(queue),
      [ATTR.taskQueue]: queue,
    },
  };
  const name = `process ${queue}`;

  return {
    run(m, handle) {
      if (!tracingEnabled()) return handle();
      return withSpan(name, { ...options, parent: extractTraceContext(m.headers) }, async (span) => {
        if (span) {
          spans.set(m, span);
          describe(span, m, names);
        }
        try {
          await handle();
        } finally {
          spans.delete(m);
        }
      });
    },
    settled(m, verdict) {
      const span = spans.get(m);
      if (span === undefined) return;
      span.setAttributes({ [ATTR.taskOutcome]: verdict.reason, 'neuroagent.settle': verdict.verb });
      if (verdict.verb !== 'ack' || verdict.reason === 'failed') markErrorCode(span, verdict.reason);
    },
  };
}

function describe(span: Span, m: JsMsg, names: Names): void {
  const parts = names.parseTaskSubject(m.subject);
  if (parts && isTaskId(parts.taskId)) {
    span.setAttributes({
      [ATTR.messagingDestination]: m.subject,
      [ATTR.messagingMessageId]: parts.taskId,
      [ATTR.taskId]: parts.taskId,
    });
  }
  const task = m.headers?.get(HEADERS.taskName) ?? '';
  if (isTaskName(task)) span.setAttribute(ATTR.taskName, task);
  span.setAttributes({
    [ATTR.taskAttempt]: m.info.deliveryCount,
    [ATTR.messagingBodySize]: m.data.length,
    [ATTR.jetstreamSeq]: m.seq,
  });
}
