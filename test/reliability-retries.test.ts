// Retries and idempotency, on the real worker process:
// - a task that keeps failing on an infrastructure error (its /output file cannot be uploaded: the
//   S3 endpoint refuses connections, a retryable storage_unavailable) is nak'ed with exponential
//   backoff (services/worker/src/backoff.ts) up to MaxDeliver, then dead-lettered as max_deliveries;
// - a message whose result is already stored (a redelivery, here a republished copy) is acked
//   without running again.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type LogLine, type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import {
  consumerInfo,
  dlqCopy,
  dlqHeaders,
  progressEvents,
  startedData,
  submitTask,
  workerIdOf,
} from './support/reliability-helpers.ts';

const MAX_DELIVER = 4;
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 60_000;

/** The bounds of retryDelayMs(attempt): base·2^(attempt−1), capped, ±25 % jitter. */
function delayBounds(attempt: number): [number, number] {
  const exp = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
  return [Math.floor(exp * 0.75), Math.ceil(Math.min(RETRY_MAX_MS, exp * 1.25))];
}

/** A local TCP port with nothing listening on it: connections are refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('delivery retries and idempotency', () => {
  const ns = testNamespace('rel_retry');
  let clients: TestClients;
  let jsm: JetStreamManager;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };

  before(async () => {
    clients = await testClients(ns);
    jsm = await jetstreamManager(clients.nc);
    const port = await closedPort();
    worker = await startWorker(
      workerEnv(ns, {
        TASKS_QUEUES: 'python_q,echo_q',
        TASKS_PYTHON__THREADS: '1',
        // Long enough that every redelivery below is a nak's, never an AckWait expiry.
        TASKS_NATS__ACK_WAIT_S: '60',
        TASKS_NATS__MAX_DELIVER: String(MAX_DELIVER),
        TASKS_NATS__RETRY_BASE_MS: String(RETRY_BASE_MS),
        TASKS_NATS__RETRY_MAX_MS: String(RETRY_MAX_MS),
        // Artifact storage on an S3 endpoint that refuses connections.
        TASKS_STORAGE__ENABLED: 'true',
        TASKS_STORAGE__ENDPOINT_URL: `http://127.0.0.1:${port}`,
        TASKS_STORAGE__FORCE_PATH_STYLE: 'true',
        TASKS_STORAGE__ACCESS_KEY: 'reliability',
        TASKS_STORAGE__SECRET_KEY: 'reliability-secret',
        TASKS_STORAGE__BUCKET: 'reliability',
        TASKS_STORAGE__REQUEST_TIMEOUT_MS: '2000',
      }),
      240_000,
    );
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  it('retries an infrastructure failure with growing delays, then dead-letters it (max_deliveries)', async () => {
    const pid = worker.proc.pid;
    const script = 'open("/output/report.txt", "w").write("never stored")\n"written"';
    const id = await submitTask(gateway.url, 'run_python', { python_script: script });

    const dead = await waitFor(() => dlqCopy(clients, ns, 'python_q', id), 60_000, 'the dead-letter copy');
    const dh = dlqHeaders(dead);
    assert.equal(dh.reason, 'max_deliveries');
    assert.equal(dh.deliveries, MAX_DELIVER);
    assert.match(dh.detail, /^storage put reliability\/anonymous\/\S+ failed/);
    assert.equal(dh.origSubject, ns.names.taskSubject('python_q', id));
    assert.equal(dead.header.get(HEADERS.msgId), id, 'the original headers are kept');

    const outcome = await waitFor(() => clients.store.readOutcome(id), 10_000, 'the result');
    assert.equal(outcome.status, 'failed');
    assert.equal(outcome.error.code, 'max_deliveries');
    assert.equal(outcome.attempts, MAX_DELIVER);

    // One execution per delivery, attempts 1..MaxDeliver, all on this worker, then one error event.
    const events = await progressEvents(clients, ns, id);
    assert.deepEqual(
      events.map((e) => e.type),
      [...Array.from({ length: MAX_DELIVER }, () => 'started'), 'error'],
    );
    assert.deepEqual(events.at(-1)?.data, { status: 'failed', code: 'max_deliveries' });
    const started = events.slice(0, MAX_DELIVER);
    assert.deepEqual(
      started.map((e) => startedData(e).attempt),
      Array.from({ length: MAX_DELIVER }, (_, i) => i + 1),
    );
    for (const e of started) assert.equal(startedData(e).worker, workerIdOf(worker));

    // Each failed delivery but the last was nak'ed with retryDelayMs(attempt): inside its jitter
    // bounds, growing, and the next delivery came no sooner than that delay.
    const naks = worker.lines.filter(
      (l): l is LogLine & { attempt: number; delayMs: number; time: string; err: { code?: string } } =>
        l.msg === 'infrastructure error: task will be retried' && l.taskId === id,
    );
    assert.deepEqual(
      naks.map((l) => l.attempt),
      Array.from({ length: MAX_DELIVER - 1 }, (_, i) => i + 1),
    );
    const gaps: number[] = [];
    for (const [k, nak] of naks.entries()) {
      assert.equal(nak.err.code, 'storage_unavailable', 'a retryable infrastructure error');
      const [lo, hi] = delayBounds(nak.attempt);
      assert.ok(lo <= nak.delayMs && nak.delayMs <= hi, `delay ${nak.delayMs} outside [${lo}, ${hi}]`);
      if (k > 0) assert.ok(nak.delayMs > (naks[k - 1]?.delayMs ?? 0), 'the delays grow');
      const next = Date.parse(started[k + 1]?.ts ?? '');
      // Log and event times are milliseconds of the same clock; allow for rounding.
      assert.ok(
        next - Date.parse(nak.time) >= nak.delayMs - 5,
        `delivery ${k + 2} came ${next - Date.parse(nak.time)} ms after a nak of ${nak.delayMs} ms`,
      );
      const gap = next - Date.parse(started[k]?.ts ?? '');
      gaps.push(gap);
      assert.ok(gap >= lo - 5, `gap ${gap} ms between deliveries ${k + 1} and ${k + 2} is below ${lo}`);
    }
    const last = worker.lines.filter(
      (l) => l.msg === 'infrastructure error on the last delivery: dead-lettering' && l.taskId === id,
    );
    assert.equal(last.length, 1);

    // Termed after the copy: nothing pending or waiting for redelivery.
    const info = await waitFor(
      async () => {
        const i = await consumerInfo(jsm, ns, 'python_q');
        return i.num_ack_pending === 0 && i.num_pending === 0 ? i : null;
      },
      10_000,
      'the message to be termed',
    );
    assert.equal(info.num_ack_pending, 0);

    // Through the API and the ledger.
    const res = await fetch(`${gateway.url}/tasks/${id}`);
    assert.equal(res.status, 200);
    const record = (await res.json()) as { status: string; attempts: number; error: { code: string } };
    assert.equal(record.status, 'failed');
    assert.equal(record.error.code, 'max_deliveries');
    assert.equal(record.attempts, MAX_DELIVER);
    await waitFor(
      async () => {
        const page = (await (await fetch(`${gateway.url}/tasks?queue=python_q`)).json()) as {
          items: { id: string; status: string; error_code: string | null; attempts: number }[];
        };
        const row = page.items.find((t) => t.id === id);
        return (
          row?.status === 'failed' && row.error_code === 'max_deliveries' && row.attempts === MAX_DELIVER
        );
      },
      20_000,
      'the ledger to record failed/max_deliveries',
    );

    // The worker lives on: the same process runs the next tasks.
    const next = await submitTask(gateway.url, 'run_python', { python_script: '6*7' });
    const ok = (await (await fetch(`${gateway.url}/tasks/${next}?wait=60`)).json()) as {
      status: string;
      result: { result: { return_value: unknown } };
    };
    assert.equal(ok.status, 'succeeded');
    assert.equal(ok.result.result.return_value, 42);
    assert.equal(worker.proc.exitCode, null);
    assert.equal(worker.proc.pid, pid);
    console.log(
      JSON.stringify({ deliveries: started.length, nakDelaysMs: naks.map((l) => l.delayMs), gapsMs: gaps }),
    );
  });

  it('acks a redelivered message whose result is stored, without running it again', async () => {
    const id = await submitTask(gateway.url, 'echo', { payload: { hello: 'once' } });
    const first = (await (await fetch(`${gateway.url}/tasks/${id}?wait=30`)).json()) as { status: string };
    assert.equal(first.status, 'succeeded');
    const resultBefore = await clients.redis.get(ns.names.resultKey(id));
    const eventsBefore = await progressEvents(clients, ns, id);
    assert.deepEqual(
      eventsBefore.map((e) => e.type),
      ['started', 'done'],
    );
    const infoBefore = await waitFor(
      async () => {
        const i = await consumerInfo(jsm, ns, 'echo_q');
        return i.num_ack_pending === 0 ? i : null;
      },
      10_000,
      'the first delivery to be acked',
    );
    const dlqBefore = (await jsm.streams.info(ns.names.dlqStream)).state.messages;

    // The same body on the same subject, as a redelivery would carry it; a new Nats-Msg-Id so the
    // stream's duplicate window keeps it.
    const subject = ns.names.taskSubject('echo_q', id);
    const original = await jsm.streams.getMessage(ns.names.stream, { last_by_subj: subject });
    assert.ok(original);
    const h = natsHeaders();
    for (const [k, values] of original.header) for (const v of values) h.append(k, v);
    h.set(HEADERS.msgId, `${id}-again`);
    const ack = await clients.js.publish(subject, original.data, { headers: h });
    assert.equal(ack.duplicate, false);
    assert.ok(ack.seq > original.seq);

    await worker.waitForLog(
      (l) => l.msg === 'result already stored: acking the duplicate delivery' && l.taskId === id,
      20_000,
      'the duplicate to be recognised',
    );
    const info = await waitFor(
      async () => {
        const i = await consumerInfo(jsm, ns, 'echo_q');
        return i.ack_floor.stream_seq >= ack.seq && i.num_ack_pending === 0 ? i : null;
      },
      10_000,
      'the duplicate to be acked',
    );
    assert.equal(info.num_pending, 0);
    assert.equal(info.num_redelivered, infoBefore.num_redelivered, 'acked on its first delivery');
    assert.equal((await jsm.streams.info(ns.names.dlqStream)).state.messages, dlqBefore);
    assert.equal(await dlqCopy(clients, ns, 'echo_q', id), null);
    // Not run again: no second `started`, the same result and terminal event.
    assert.deepEqual(await progressEvents(clients, ns, id), eventsBefore);
    assert.equal(await clients.redis.get(ns.names.resultKey(id)), resultBefore);
    assert.equal(worker.lines.filter((l) => l.msg === 'task completed' && l.taskId === id).length, 1);
  });
});
