// OpenTelemetry traces end to end: the real gateway and python worker processes export to an OTLP
// receiver in this test (the SDK's own exporter, JSON encoding), and one run_python task makes one
// trace from the HTTP request through the publish, the worker's delivery and the sandbox run to the
// Redis and ledger writes, with the trace id in both services' log lines.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { HEADERS } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, workerEnv } from '@neuroagent/platform/testing';
import {
  OTLP_KIND,
  type OtlpReceiver,
  type ReceivedSpan,
  startOtlpReceiver,
} from '@neuroagent/platform/testing-otlp';
import { type TestClients, testClients } from './support/namespace.ts';
import {
  GATEWAY_MAIN,
  type ServiceProcess,
  startGateway,
  startService,
  startWorker,
  WORKER_MAIN,
} from './support/processes.ts';

const SCRIPT = 'print(1+1)';
const GATEWAY_SPANS = [
  'POST /tools/run-python',
  'redis write_submitted',
  'ledger record_submitted',
  'ledger insert_submitted',
  'publish python_q',
];
const WORKER_SPANS = [
  'process python_q',
  'redis begin_task',
  'run run_python',
  'sandbox run',
  'redis write_outcome',
];

function otelEnv(receiver: OtlpReceiver): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
}

/** The ancestors of `span` within its trace, nearest first. */
function ancestors(span: ReceivedSpan, byId: Map<string, ReceivedSpan>): ReceivedSpan[] {
  const chain: ReceivedSpan[] = [];
  for (let p = span.parentSpanId; p !== undefined; ) {
    const parent = byId.get(p);
    if (parent === undefined) break;
    chain.push(parent);
    p = parent.parentSpanId;
  }
  return chain;
}

describe('tracing end to end (OTLP)', () => {
  const ns = testNamespace('tracing');
  let receiver: OtlpReceiver;
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };

  before(async () => {
    receiver = await startOtlpReceiver();
    clients = await testClients(ns);
    worker = await startWorker(workerEnv(ns, { TASKS_QUEUES: 'python_q', ...otelEnv(receiver) }));
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns), ...otelEnv(receiver) });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
    await receiver?.close();
  });

  it('makes one trace of a run_python task across the gateway and the worker', async () => {
    const res = await fetch(`${gateway.url}/tools/run-python`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ python_script: SCRIPT }),
    });
    assert.equal(res.status, 200);
    const taskId = res.headers.get('x-task-id');
    assert.ok(taskId);
    assert.deepEqual(((await res.json()) as { result: { output: string[] } }).result.output, ['2']);

    const wanted = [...GATEWAY_SPANS, ...WORKER_SPANS, 'ledger apply_events'];
    const spans = await receiver.waitFor(
      (all) => wanted.every((name) => all.some((s) => s.name === name)),
      20_000,
      `the spans ${wanted.join(', ')}`,
    );
    assert.deepEqual(receiver.rejected, []);

    // Exactly one trace holds spans of both services: the request's.
    const services = new Map<string, Set<string>>();
    for (const s of spans) services.set(s.traceId, (services.get(s.traceId) ?? new Set()).add(s.service));
    const shared = [...services].filter(([, names]) => names.has('gateway') && names.has('worker'));
    assert.equal(shared.length, 1, `traces with both services: ${JSON.stringify(shared)}`);
    const traceId = shared[0]?.[0] ?? '';
    const trace = spans.filter((s) => s.traceId === traceId);
    const byName = (name: string) => trace.filter((s) => s.name === name);
    for (const name of GATEWAY_SPANS) {
      assert.equal(byName(name).length, 1, `one ${name} span in the trace`);
      assert.equal(byName(name)[0]?.service, 'gateway', name);
    }
    for (const name of WORKER_SPANS) {
      assert.equal(byName(name).length, 1, `one ${name} span in the trace`);
      assert.equal(byName(name)[0]?.service, 'worker', name);
    }

    // Kinds and the attributes that matter.
    const http = byName('POST /tools/run-python')[0] as ReceivedSpan;
    assert.equal(http.kind, OTLP_KIND.server);
    assert.equal(http.parentSpanId, undefined, 'the request starts the trace');
    assert.equal(http.attributes['http.request.method'], 'POST');
    assert.equal(http.attributes['http.route'], '/tools/run-python');
    assert.equal(http.attributes['http.response.status_code'], 200);
    const publish = byName('publish python_q')[0] as ReceivedSpan;
    assert.equal(publish.kind, OTLP_KIND.producer);
    assert.equal(publish.attributes['messaging.system'], 'nats');
    assert.equal(publish.attributes['messaging.destination.name'], ns.names.taskSubject('python_q', taskId));
    assert.equal(publish.attributes['neuroagent.task.id'], taskId);
    const delivery = byName('process python_q')[0] as ReceivedSpan;
    assert.equal(delivery.kind, OTLP_KIND.consumer);
    assert.equal(delivery.parentSpanId, publish.spanId, 'the delivery continues the publish span');
    assert.equal(delivery.attributes['messaging.system'], 'nats');
    assert.equal(delivery.attributes['neuroagent.task.id'], taskId);
    assert.equal(delivery.attributes['neuroagent.task.name'], 'run_python');
    assert.equal(delivery.attributes['neuroagent.task.queue'], 'python_q');
    assert.equal(delivery.attributes['neuroagent.task.attempt'], 1);
    assert.equal(delivery.attributes['neuroagent.task.outcome'], 'succeeded');
    assert.equal(byName('redis write_outcome')[0]?.kind, OTLP_KIND.client);
    assert.equal(byName('redis write_outcome')[0]?.attributes['db.system.name'], 'redis');
    assert.equal(byName('redis write_submitted')[0]?.kind, OTLP_KIND.client);
    assert.equal(byName('ledger insert_submitted')[0]?.attributes['db.system.name'], 'sqlite');
    assert.equal(byName('sandbox run')[0]?.attributes['neuroagent.python.status'], 'success');
    for (const s of trace) assert.notEqual(s.status.code, 2, `${s.name} is not an error`);

    // Every worker span descends from the gateway's publish span.
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    for (const s of trace.filter((x) => x.service === 'worker')) {
      assert.ok(
        ancestors(s, byId).some((a) => a.spanId === publish.spanId),
        `${s.name} has the publish span as ancestor`,
      );
    }
    // The ledger's batch of status changes is traced on its own (the events carry no context).
    const apply = spans.find((s) => s.name === 'ledger apply_events') as ReceivedSpan;
    assert.equal(apply.service, 'gateway');
    assert.ok(Number(apply.attributes['db.operation.batch.size']) >= 1);

    // The message itself carries the publish span's context, beside its (still valid) signature.
    const jsm = await jetstreamManager(clients.nc);
    const msg = await jsm.streams.getMessage(ns.stream, {
      last_by_subj: ns.names.taskSubject('python_q', taskId),
    });
    assert.equal(msg?.header.get(HEADERS.traceparent), `00-${traceId}-${publish.spanId}-01`);
    assert.match(msg?.header.get(HEADERS.taskSignature) ?? '', /^v1=/);

    // The user's code never becomes an attribute.
    for (const s of spans) {
      for (const [key, value] of Object.entries(s.attributes)) {
        assert.ok(!String(value).includes('print('), `${s.name} ${key} holds the script`);
      }
    }

    // Each service's log lines carry the trace id while its spans are active.
    const logged = (p: ServiceProcess) => p.lines.filter((l) => l.trace_id === traceId);
    assert.ok(
      logged(gateway).some((l) => l.msg === 'request' && typeof l.span_id === 'string'),
      'the gateway request line carries the trace id',
    );
    assert.ok(
      logged(worker).some((l) => l.msg === 'task completed' && l.taskId === taskId),
      'the worker task line carries the trace id',
    );
    const resourceNames = new Set(spans.map((s) => s.service));
    assert.deepEqual([...resourceNames].sort(), ['gateway', 'worker']);
  });

  it('stops a service at boot (exit 78) when the endpoint is not an http(s) URL', async () => {
    const bad = { OTEL_EXPORTER_OTLP_ENDPOINT: 'otel-collector:4318' };
    const g = startService(GATEWAY_MAIN, { PATH: process.env.PATH ?? '', ...gatewayEnv(ns), ...bad });
    assert.equal(await g.exited, 78);
    assert.match(g.stderr.join('\n'), /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/);
    const w = startService(WORKER_MAIN, workerEnv(ns, { TASKS_QUEUES: 'echo_q', ...bad }));
    assert.equal(await w.exited, 78);
    assert.ok(w.lines.some((l) => /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/.test(l.msg ?? '')));
  });
});
