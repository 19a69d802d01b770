// The consumer loop of one queue. It maps every outcome to exactly one JetStream verb:
//   result (success, or a failure the task itself reports) → write result, then event, then ack;
//   infrastructure error → nak(backoff), or dead-letter + term on the last delivery;
//   poison message (not JSON, wrong schema, unknown task) → dead-letter copy, error event, term;
//   a message without a valid Task-Signature is poison too (bad_signature), but nothing of it is
//   believed: it is dead-lettered and termed, and no task state is written for the id it names.
// Be careful about what can throw here: every message MUST end in exactly one of ack, nak or term,
// and all three go through settle(), which logs the reason. Whether a delivery runs is decided by
// the pure functions of delivery.ts.
import { hostname } from 'node:os';
import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { type NatsConnection, headers as natsHeaders, type Subscription } from '@nats-io/nats-core';
import {
  HEADERS,
  isTaskName,
  type Names,
  type QueueName,
  TASKS,
  type TaskOutcome,
} from '@neuroagent/contracts';
import {
  createValidator,
  errorMessage,
  isRetryable,
  type Logger,
  type ParsedMessage,
  parseTaskMessage,
  type SubmittedMeta,
  TaskFailedError,
  type TaskSigner,
  type TaskWriter,
  type Validator,
} from '@neuroagent/platform';
import type { TSchema } from '@sinclair/typebox';
import { retryDelayMs } from './backoff.ts';
import { blockerOf, decideDelivery } from './delivery.ts';
import { createDeliveryTracer } from './delivery-tracing.ts';
import { type HandlerMap, runJob } from './handlers/types.ts';
import type { WorkerMetrics } from './metrics.ts';
import { Slots } from './slots.ts';

export interface ConsumerOptions {
  queue: QueueName;
  nc: NatsConnection;
  js: JetStreamClient;
  names: Names;
  store: TaskWriter;
  handlers: HandlerMap;
  concurrency: number;
  ackWaitMs: number;
  maxDeliver: number;
  fetchExpiresMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Verifies each message's Task-Signature; what does not verify is dead-lettered (bad_signature). */
  signer: TaskSigner;
  log: Logger;
  /** Counts each delivery's outcome and run time (metrics.ts). */
  metrics?: Pick<WorkerMetrics, 'observe'>;
}

export const WORKER_ID = `${hostname()}:${process.pid}`;
// Why a task's AbortSignal fired: the worker is giving it back, or someone cancelled it.
export const ABORT_SHUTDOWN = 'shutdown';
export const ABORT_CANCELLED = 'cancelled';
const outputValidators = new Map<string, Validator<TSchema>>(
  Object.entries(TASKS).map(([name, def]) => [name, createValidator(def.output)]),
);

export function createQueueConsumer(opts: ConsumerOptions) {
  const { queue, js, names, store, log } = opts;
  const slots = new Slots(opts.concurrency);
  // A span per delivery, continuing the message's trace (delivery-tracing.ts).
  const deliveries = createDeliveryTracer(queue, names);
  const inFlight = new Map<JsMsg, AbortController>();
  const inFlightById = new Map<string, AbortController>();
  let cancelSub: Subscription | null = null;
  let stopped = false;
  let batch: ConsumerMessages | null = null;
  let loop: Promise<void> | null = null;
  let lastPullOk = Date.now();
  // Resolved by stop(): the loop may be waiting for a free slot, which a long task holds for ever.
  let wakeOnStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    wakeOnStop = resolve;
  });
  // An operator's pause (queue-control): no pull is issued while it holds; running tasks go on.
  let paused = false;
  let wakeOnResume: () => void = () => {};
  let resumed: Promise<void> = Promise.resolve();

  // When each in-flight message's run began (performance.now()), for the run-time metric.
  const runStarts = new Map<JsMsg, number>();
  const ranMs = (m: JsMsg) => {
    const at = runStarts.get(m);
    return at === undefined ? 0 : performance.now() - at;
  };

  // ------------------------------------------------------------------ settling
  /** The only place a message is acked, nak'ed or termed; `reason` says why, in the log. */
  function settle(m: JsMsg, verdict: Verdict): void {
    if (verdict.verb === 'ack') m.ack();
    else if (verdict.verb === 'term') m.term();
    else m.nak(verdict.delayMs);
    deliveries.settled(m, verdict);
    log.debug({ seq: m.seq, subject: m.subject, ...verdict }, 'message settled');
  }

  // ------------------------------------------------------------------ pulling
  async function pullLoop(consumer: Consumer): Promise<void> {
    while (!stopped) {
      await Promise.race([slots.waitForFree(), stopRequested]);
      if (stopped) break;
      if (paused) {
        await Promise.race([resumed, stopRequested]);
        continue;
      }
      try {
        batch = await consumer.fetch({ max_messages: slots.free, expires: opts.fetchExpiresMs });
        for await (const m of batch) {
          slots.acquire();
          void deliveries.run(m, () => handle(m)).finally(() => slots.release());
        }
        lastPullOk = Date.now();
      } catch (err) {
        if (stopped) break;
        // After a NATS restart or a leader change a pull ends with an error and is not re-armed
        // by the client: it must be issued again.
        log.warn({ err }, 'pull failed: retrying');
        await delay(1000);
      } finally {
        batch = null;
      }
    }
  }

  async function bindConsumer(): Promise<Consumer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await js.consumers.get(names.stream, names.consumerName(queue));
      } catch (err) {
        if (stopped) throw err;
        log.warn({ err, attempt }, 'consumer not available yet: retrying (is it provisioned?)');
        await delay(Math.min(5000, attempt * 500));
      }
    }
  }

  // ------------------------------------------------------------------ one message
  async function handle(m: JsMsg): Promise<void> {
    const parsed = parseTaskMessage(m.subject, m.data, names, {
      signer: opts.signer,
      header: m.headers?.get(HEADERS.taskSignature),
    });
    if (!parsed.ok) {
      await deadLetter(m, parsed.reason, parsed.detail, parsed);
      return;
    }
    const { taskId, task, envelope } = parsed;
    const attempt = m.info.deliveryCount;
    const tlog = log.child({ taskId, task, attempt, requestId: envelope.requestId });
    const meta: SubmittedMeta = {
      owner: envelope.userId,
      queue: envelope.queue,
      task,
      submittedAt: envelope.submittedAt,
    };
    const abort = new AbortController();
    inFlight.set(m, abort);
    inFlightById.set(taskId, abort);
    // Set once this delivery has marked the task started: the terminal event may then carry the record.
    let startedAt: string | undefined;
    let started: number | undefined;
    const heartbeat = setInterval(() => m.working(), Math.max(100, Math.floor(opts.ackWaitMs / 3)));
    try {
      // Measured from the JetStream timestamp, which redeliveries keep and a republish renews.
      const blocker = blockerOf({
        task,
        startBy: m.info.timestampNanos / 1e6 + envelope.startWithinS * 1000,
        now: Date.now(),
        hasHandler: opts.handlers[task] !== undefined,
      });
      // One round trip: the duplicate and cancel checks, then the started mark.
      const beganAt = new Date().toISOString();
      const state = await store.begin(taskId, meta, attempt, WORKER_ID, blocker === null, beganAt);
      const decision = decideDelivery(state, blocker);
      if (decision.action === 'ack_duplicate') {
        tlog.info('result already stored: acking the duplicate delivery');
        opts.metrics?.observe(task, 'duplicate', 0);
        settle(m, { verb: 'ack', reason: 'duplicate' });
        return;
      }
      if (decision.action === 'record_cancelled') {
        tlog.info('task cancelled before it started');
        await finish(m, taskId, meta, cancelledOutcome(attempt));
        return;
      }
      if (decision.action === 'record_failed') {
        tlog.warn({ code: decision.code }, 'task not started');
        await finish(m, taskId, meta, failed(decision.code, decision.message, attempt));
        return;
      }
      startedAt = beganAt;
      started = performance.now();
      runStarts.set(m, started);
      const running = runJob(opts.handlers, parsed.job, {
        taskId,
        userId: envelope.userId,
        threadId: envelope.threadId,
        attempt,
        log: tlog,
        signal: abort.signal,
        progress: (data) => store.appendProgress(taskId, data),
      });
      if (running === null)
        throw new TaskFailedError('unknown_task', `this worker has no handler for ${task}`);
      const output: unknown = await running;
      const outErrors = outputValidators.get(task)?.errors(output) ?? [];
      if (outErrors.length > 0) {
        throw new TaskFailedError('internal', `handler output does not match the ${task} contract`, {
          details: outErrors,
        });
      }
      const durationMs = Math.round(performance.now() - started);
      if (abort.signal.reason === ABORT_SHUTDOWN) {
        // stop() has handed the message back (nak); another worker will run it from the start.
        tlog.warn({ durationMs }, 'task interrupted by shutdown: result discarded, message handed back');
        return;
      }
      if (abort.signal.reason === ABORT_CANCELLED) {
        await finish(m, taskId, meta, { ...cancelledOutcome(attempt), result: output }, startedAt);
        tlog.info({ durationMs }, 'task cancelled while running');
        return;
      }
      await finish(
        m,
        taskId,
        meta,
        { status: 'succeeded', result: output, finished_at: now(), attempts: attempt },
        startedAt,
      );
      tlog.info({ durationMs }, 'task completed');
    } catch (err) {
      if (abort.signal.reason === ABORT_CANCELLED) {
        tlog.info({ err }, 'task cancelled while running');
        await finish(m, taskId, meta, cancelledOutcome(attempt), startedAt).catch((e: unknown) =>
          retryOrGiveUp(m, parsed, e, tlog),
        );
      } else if (abort.signal.aborted) {
        tlog.warn('task handed back during shutdown'); // stop() has already nak'ed it
      } else if (!isRetryable(err)) {
        const code = (err as TaskFailedError).code;
        tlog.warn({ err, code }, 'task failed');
        await finish(m, taskId, meta, failed(code, errorMessage(err), attempt), startedAt).catch(
          (e: unknown) => retryOrGiveUp(m, parsed, e, tlog),
        );
      } else {
        await retryOrGiveUp(m, parsed, err, tlog);
      }
    } finally {
      clearInterval(heartbeat);
      runStarts.delete(m);
      inFlight.delete(m);
      inFlightById.delete(taskId);
    }
  }

  /** Result, then event (one MULTI), then ack. A failure to write is an infrastructure error. */
  async function finish(
    m: JsMsg,
    taskId: string,
    meta: SubmittedMeta,
    outcome: TaskOutcome,
    startedAt?: string,
  ) {
    await store.writeOutcome(taskId, meta, outcome, startedAt);
    opts.metrics?.observe(meta.task, outcome.status, ranMs(m));
    // Not ackAck(): waiting for the server's confirmation would cost a round trip per task and buy
    // nothing, because a lost ack only means a redelivery, which begin() recognises as a duplicate.
    settle(m, { verb: 'ack', reason: outcome.status });
  }

  async function retryOrGiveUp(m: JsMsg, parsed: ParsedMessage & { ok: true }, err: unknown, tlog: Logger) {
    const attempt = m.info.deliveryCount;
    if (attempt < opts.maxDeliver) {
      const delayMs = retryDelayMs(attempt, opts.retryBaseMs, opts.retryMaxMs);
      tlog.warn({ err, delayMs, maxDeliver: opts.maxDeliver }, 'infrastructure error: task will be retried');
      opts.metrics?.observe(parsed.task, 'retried', ranMs(m));
      settle(m, { verb: 'nak', reason: 'retry', delayMs });
      return;
    }
    tlog.error(
      { err, maxDeliver: opts.maxDeliver },
      'infrastructure error on the last delivery: dead-lettering',
    );
    await deadLetter(m, 'max_deliveries', errorMessage(err), parsed);
  }

  // ------------------------------------------------------------------ dead letters
  async function deadLetter(m: JsMsg, reason: string, detail: string, parsed: ParsedMessage): Promise<void> {
    const dlog = log.child({ taskId: parsed.taskId, seq: m.seq, reason });
    const h = natsHeaders();
    for (const [k, v] of m.headers ?? []) for (const value of v) h.append(k, value);
    h.set(HEADERS.dlqReason, reason);
    h.set(HEADERS.dlqDetail, detail.slice(0, 1024).replace(/[\r\n]+/g, ' '));
    h.set(HEADERS.dlqOrigSubject, m.subject);
    h.set(HEADERS.dlqOrigSeq, String(m.seq));
    h.set(HEADERS.dlqDeliveries, String(m.info.deliveryCount));
    try {
      // The copy must be durable before term(): a termed message is never delivered again.
      await js.publish(names.dlqSubject(m.subject), m.data, { headers: h });
    } catch (err) {
      dlog.error({ err }, 'dead-letter publish failed: message will be redelivered');
      settle(m, {
        verb: 'nak',
        reason: 'dead_letter_unavailable',
        delayMs: retryDelayMs(m.info.deliveryCount, opts.retryBaseMs, opts.retryMaxMs),
      });
      return;
    }
    // A badly signed message may name any task id, even a victim's pending one: recording a failure
    // for it would let a forger fail that task (its real delivery would then be skipped as done).
    if (parsed.taskId && reason !== 'bad_signature') {
      const env = parsed.ok ? parsed.envelope : parsed.envelope;
      const meta: SubmittedMeta = {
        owner: typeof env?.userId === 'string' ? env.userId : '',
        queue,
        task: typeof env?.task === 'string' ? env.task : (m.headers?.get(HEADERS.taskName) ?? ''),
        submittedAt:
          typeof env?.submittedAt === 'string'
            ? env.submittedAt
            : new Date(m.info.timestampNanos / 1e6).toISOString(),
      };
      await store
        .recordFailureUnlessFinished(parsed.taskId, meta, failed(reason, detail, m.info.deliveryCount))
        .then((recorded) => {
          if (!recorded) dlog.warn('the task already has an outcome: kept it, recorded no failure');
        })
        .catch((err: unknown) => dlog.error({ err }, 'could not record the dead-lettered task as failed'));
    }
    dlog.error({ detail }, 'message dead-lettered');
    // A poison message can name any task in its header: only registered names become a label, so
    // a flood of forged names cannot grow the metric's series without bound.
    const claimed = parsed.ok ? parsed.task : (m.headers?.get(HEADERS.taskName) ?? '');
    opts.metrics?.observe(isTaskName(claimed) ? claimed : 'unknown', 'dead_lettered', ranMs(m));
    // Bare term(): NATS 2.9 redelivers a message termed with a reason (ours is in the DLQ headers).
    settle(m, { verb: 'term', reason });
  }

  return {
    slots,
    async start(): Promise<void> {
      // Cancels arrive on core NATS; a task not running here is someone else's (or not started yet,
      // and then the Redis flag stops it).
      cancelSub = opts.nc.subscribe(names.cancelSubject('*'), {
        callback: (_err, msg) => {
          const parts = msg.subject.split('.');
          const abort = inFlightById.get(parts[parts.length - 1] ?? '');
          if (abort && !abort.signal.aborted) {
            log.info({ taskId: parts[parts.length - 1] }, 'cancel received: interrupting the task');
            abort.abort(ABORT_CANCELLED);
          }
        },
      });
      const consumer = await bindConsumer();
      log.info({ concurrency: opts.concurrency }, 'consuming');
      loop = pullLoop(consumer);
    },
    /** Healthy while the loop is running and pulls have succeeded recently (or it is paused). */
    healthy(): boolean {
      if (loop === null || stopped) return false;
      return paused || Date.now() - lastPullOk < opts.fetchExpiresMs * 3 + 10_000;
    },
    get paused(): boolean {
      return paused;
    },
    /**
     * Stops pulling at once: the open pull request is withdrawn (its messages already received are
     * still run) and no new one is issued until resume(). Running tasks finish and settle.
     */
    pause(): void {
      if (paused || stopped) return;
      paused = true;
      resumed = new Promise<void>((resolve) => {
        wakeOnResume = resolve;
      });
      batch?.stop();
      log.info('queue paused: no longer pulling');
    },
    resume(): void {
      if (!paused) return;
      paused = false;
      lastPullOk = Date.now();
      wakeOnResume();
      log.info('queue resumed: pulling again');
    },
    /** Stop pulling, let in-flight tasks finish within graceMs, then hand the rest back (nak). */
    async stop(graceMs: number): Promise<void> {
      stopped = true;
      wakeOnStop();
      cancelSub?.unsubscribe();
      batch?.stop();
      await loop;
      const idle = slots.waitIdle();
      const timedOut = await Promise.race([idle.then(() => false), delay(graceMs).then(() => true)]);
      if (timedOut) {
        log.warn({ inFlight: inFlight.size }, 'grace period over: handing in-flight tasks back');
        for (const abort of inFlight.values()) abort.abort(ABORT_SHUTDOWN);
        for (const m of inFlight.keys()) settle(m, { verb: 'nak', reason: 'shutdown' });
        inFlight.clear();
      }
    },
  };
}

export type QueueConsumer = ReturnType<typeof createQueueConsumer>;

/** How a message ends, and why. A nak without delay is redelivered at once. */
type Verdict =
  | { verb: 'ack'; reason: string }
  | { verb: 'term'; reason: string }
  | { verb: 'nak'; reason: string; delayMs?: number };

function cancelledOutcome(attempts: number): TaskOutcome {
  return {
    status: 'cancelled',
    error: { code: 'cancelled', message: 'the task was cancelled' },
    finished_at: now(),
    attempts,
  };
}

function failed(code: string, message: string, attempts: number): TaskOutcome {
  return { status: 'failed', error: { code, message }, finished_at: now(), attempts };
}

function now(): string {
  return new Date().toISOString();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
