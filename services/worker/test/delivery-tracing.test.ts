// The worker's delivery span against hostile trace headers: a real queue consumer (echo handler)
// on the real NATS and Redis, with tracing on and exporting to a real OTLP receiver. Anyone who can
// publish to `tasks.>` writes these headers, so a garbage, oversized or wrong-version traceparent
// (or tracestate, or Task-Name) must be ignored without error, and the run must still succeed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { type NatsConnection, headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS } from '@neuroagent/contracts';
import {
  closeRedis,
  connectNats,
  connectRedis,
  createLogger,
  createTaskReader,
  createTaskSigner,
  createTaskWriter,
  newTaskId,
  type Redis,
  startTracing,
  type Tracing,
} from '@neuroagent/platform';
import {
  cleanupNamespace,
  signTaskHeaders,
  testNamespace,
  waitFor,
  workerEnv,
} from '@neuroagent/platform/testing';
import { OTLP_KIND, type OtlpReceiver, startOtlpReceiver } from '@neuroagent/platform/testing-otlp';
import { loadWorkerConfig } from '../src/config.ts';
import { createQueueConsumer, type QueueConsumer } from '../src/consumer.ts';
import { createEchoHandler } from '../src/handlers/echo.ts';
import { provisionQueues, workerNames } from '../src/provisioning.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

// [case, traceparent, tracestate, Task-Name]
const HOSTILE: [string, string, string, string][] = [
  ['garbage', '%%% not a trace context %%%', '', 'echo'],
  ['too long', `01-${TRACE_ID}-${SPAN_ID}-01-${'x'.repeat(2000)}`, '', 'echo'],
  ['wrong version', `ff-${TRACE_ID}-${SPAN_ID}-01`, '', 'echo'],
  ['version 00 with extra fields', `${VALID}-00`, '', 'echo'],
  ['all-zero ids', `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`, 'a=b', 'echo'],
  ['oversized tracestate and Task-Name', 'x', `k=${'v'.repeat(8000)}`, 'n'.repeat(4000)],
];

describe('delivery span with hostile trace headers', () => {
  const ns = testNamespace('dtrace');
  const log = createLogger('test', 'silent');
  const config = loadWorkerConfig(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
  const names = workerNames(config);
  let receiver: OtlpReceiver;
  let tracing: Tracing | null = null;
  let nc: NatsConnection;
  let redis: Redis;
  let consumer: QueueConsumer;

  before(async () => {
    receiver = await startOtlpReceiver();
    // The SDK reads these from process.env itself.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
    process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
    tracing = await startTracing(process.env, { serviceName: 'worker', log });
    assert.ok(tracing, 'tracing is on');
    nc = await connectNats(config.nats, 'delivery-tracing-test', log);
    redis = connectRedis(config.redis, 'delivery-tracing-test', log);
    await provisionQueues(nc, config, ['echo_q'], log);
    consumer = createQueueConsumer({
      queue: 'echo_q',
      nc,
      js: jetstream(nc),
      names,
      store: createTaskWriter(redis, { names, ttlS: 600, progressMaxLen: 100, eventsMaxLen: 1000 }),
      handlers: { echo: await createEchoHandler({ config, log }) },
      concurrency: 4,
      ackWaitMs: 30_000,
      maxDeliver: 3,
      fetchExpiresMs: 1000,
      retryBaseMs: 100,
      retryMaxMs: 1000,
      signer: createTaskSigner(ns.signingKey),
      log,
    });
    await consumer.start();
  });
  after(async () => {
    await consumer?.stop(1000);
    await cleanupNamespace(ns, nc, redis);
    await nc?.drain();
    if (redis) await closeRedis(redis);
    await tracing?.shutdown();
    await receiver?.close();
  });

  async function publish(payload: string, traceparent: string, tracestate: string, taskName: string) {
    const id = newTaskId();
    const body = JSON.stringify({
      v: 1,
      queue: 'echo_q',
      task: 'echo',
      input: { payload },
      userId: 'alice',
      submittedAt: new Date().toISOString(),
      startWithinS: 600,
    });
    const h = natsHeaders();
    h.set(HEADERS.taskName, taskName);
    h.set(HEADERS.traceparent, traceparent);
    if (tracestate !== '') h.set(HEADERS.tracestate, tracestate);
    await jetstream(nc).publish(names.taskSubject('echo_q', id), body, {
      msgID: id,
      headers: signTaskHeaders(ns, id, body, h),
    });
    return id;
  }

  it('ignores them without error, runs the task, and starts a trace of its own', async () => {
    const reader = createTaskReader(redis, { names, ttlS: 600 });
    const ids = new Map<string, string>();
    for (const [what, traceparent, tracestate, taskName] of HOSTILE) {
      ids.set(what, await publish(what, traceparent, tracestate, taskName));
    }
    // The control: a valid traceparent is continued.
    const validId = await publish('valid', VALID, 'vendor=1', 'echo');

    for (const [what, id] of [...ids, ['valid', validId] as const]) {
      const outcome = await waitFor(() => reader.readOutcome(id), 15_000, `the outcome of ${what}`);
      assert.equal(outcome.status, 'succeeded', what);
      assert.deepEqual(outcome.result, { payload: what, attempt: 1 }, what);
    }
    const spans = await receiver.waitFor(
      (all) =>
        [...ids.values(), validId].every((id) =>
          all.some((s) => s.name === 'process echo_q' && s.attributes['neuroagent.task.id'] === id),
        ),
      15_000,
      'a delivery span per message',
    );
    assert.deepEqual(receiver.rejected, []);
    const delivery = (id: string) =>
      spans.find((s) => s.name === 'process echo_q' && s.attributes['neuroagent.task.id'] === id);

    const valid = delivery(validId);
    assert.equal(valid?.kind, OTLP_KIND.consumer);
    assert.equal(valid?.traceId, TRACE_ID);
    assert.equal(valid?.parentSpanId, SPAN_ID);
    for (const [what, id] of ids) {
      const span = delivery(id);
      assert.ok(span, what);
      assert.equal(span.parentSpanId, undefined, `${what}: no parent taken from the header`);
      assert.notEqual(span.traceId, TRACE_ID, what);
      assert.equal(span.attributes['neuroagent.task.outcome'], 'succeeded', what);
      assert.notEqual(span.status.code, 2, what);
    }
    // The forged Task-Name names no registered task: it is not an attribute.
    assert.equal(
      delivery(ids.get('oversized tracestate and Task-Name') ?? '')?.attributes['neuroagent.task.name'],
      undefined,
    );
    assert.equal(valid?.attributes['neuroagent.task.name'], 'echo');
    // Nothing a header carried became an attribute, and every attribute stays small.
    for (const s of spans) {
      for (const [key, value] of Object.entries(s.attributes)) {
        assert.ok(String(value).length <= 256, `${s.name} ${key} is ${String(value).length} characters`);
      }
    }
  });
});
