// Poison messages published straight to JetStream, as an operator with the NATS CLI would (`nats
// pub <prefix>.python_q.<id> …`): each lands in the dead-letter stream with its reason and its
// original body, the task is recorded as failed with that reason in Redis and in the ledger, it is
// never redelivered, and the same worker process goes on serving normal tasks.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS } from '@neuroagent/contracts';
import { newTaskId } from '@neuroagent/platform';
import { gatewayEnv, signTaskHeaders, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import type { Ledger } from '../services/gateway/src/ledger/ledger.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import {
  consumerInfo,
  dlqCopy,
  dlqHeaders,
  envelopeOf,
  openNamespaceLedger,
  progressEvents,
  startedData,
  submitTask,
  workerIdOf,
} from './support/reliability-helpers.ts';

interface PoisonCase {
  kind: string;
  body: string;
  headers: Record<string, string>;
  /** The Dlq-Reason / error code the worker must use (services/platform/src/message-parser.ts). */
  reason: 'invalid_message' | 'unknown_task' | 'invalid_input';
  detail: RegExp;
  /** The owner the body names, if it is readable: the API serves the failure to that user. */
  owner: string;
}

function poisonCases(): (PoisonCase & { id: string })[] {
  const cases: PoisonCase[] = [
    {
      kind: 'invalid JSON',
      body: '{"v": 1, "queue": "python_q", "task": "run_python", oops',
      headers: {},
      reason: 'invalid_message',
      detail: /^body is not JSON/,
      owner: '',
    },
    {
      kind: 'valid JSON with the wrong schema',
      body: JSON.stringify({ v: 7, queue: 'python_q', script: 'print(1)', user: 42 }),
      headers: { [HEADERS.taskName]: 'run_python' },
      reason: 'invalid_message',
      detail: /^body does not match the task envelope/,
      owner: '',
    },
    {
      kind: 'a valid envelope with an unknown task name',
      body: JSON.stringify(envelopeOf('python_q', 'no_such_task', { python_script: '1' })),
      headers: { [HEADERS.taskName]: 'no_such_task' },
      reason: 'unknown_task',
      detail: /unknown task "no_such_task"/,
      owner: 'anonymous',
    },
    {
      kind: 'a run_python envelope whose input breaks the contract',
      body: JSON.stringify(envelopeOf('python_q', 'run_python', { python_script: 42 })),
      headers: { [HEADERS.taskName]: 'run_python' },
      reason: 'invalid_input',
      detail: /^input\/python_script/,
      owner: 'anonymous',
    },
  ];
  return cases.map((c) => ({ ...c, id: newTaskId() }));
}

describe('poison messages on python_q', () => {
  const ns = testNamespace('rel_poison');
  let clients: TestClients;
  let jsm: JetStreamManager;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let ledger: Ledger | undefined;

  before(async () => {
    clients = await testClients(ns);
    jsm = await jetstreamManager(clients.nc);
    // The first start on a machine builds the Pyodide snapshot, which can take a while.
    worker = await startWorker(workerEnv(ns, { TASKS_PYTHON__THREADS: '1' }), 240_000);
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  });
  after(async () => {
    await ledger?.close();
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
    const dbUrl = gatewayEnv(ns).NEUROAGENT_DB__URL ?? '';
    const dbFile = dbUrl.slice('sqlite:'.length);
    for (const suffix of ['', '-wal', '-shm', '-journal']) await rm(`${dbFile}${suffix}`, { force: true });
  });

  it('dead-letters each kind with its reason, records it failed, and the worker lives on', async () => {
    const pid = worker.proc.pid;
    const cases = poisonCases();
    for (const c of cases) {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(c.headers)) h.set(k, v);
      // Signed as the gateway would: these test the checks after the signature.
      const ack = await clients.js.publish(ns.names.taskSubject('python_q', c.id), c.body, {
        headers: signTaskHeaders(ns, c.id, c.body, h),
      });
      assert.equal(ack.stream, ns.names.stream);
    }

    ledger = await openNamespaceLedger(ns);
    for (const c of cases) {
      // The dead-letter copy: reason, detail, the original subject and body, one delivery.
      const dead = await waitFor(
        () => dlqCopy(clients, ns, 'python_q', c.id),
        30_000,
        `DLQ copy (${c.kind})`,
      );
      const dh = dlqHeaders(dead);
      assert.equal(dh.reason, c.reason, c.kind);
      assert.match(dh.detail, c.detail, c.kind);
      assert.equal(dh.origSubject, ns.names.taskSubject('python_q', c.id), c.kind);
      assert.equal(dh.deliveries, 1, `${c.kind}: dead-lettered on its first delivery, never retried`);
      assert.equal(dead.string(), c.body, `${c.kind}: the original body, byte for byte`);
      for (const [k, v] of Object.entries(c.headers)) assert.equal(dead.header.get(k), v, `${c.kind}: ${k}`);

      // The result: failed with the reason as its code, and the terminal event.
      const record = await waitFor(
        async () => {
          const r = await clients.store.readRecord(c.id);
          return r?.status === 'failed' ? r : null;
        },
        10_000,
        `the failed result (${c.kind})`,
      );
      assert.equal(record.error?.code, c.reason, c.kind);
      assert.equal(record.owner, c.owner, c.kind);
      const outcome = await clients.store.readOutcome(c.id);
      assert.equal(outcome?.status, 'failed');
      assert.equal(outcome.error.code, c.reason);
      const events = await progressEvents(clients, ns, c.id);
      assert.deepEqual(
        events.map((e) => [e.type, e.data]),
        [['error', { status: 'failed', code: c.reason }]],
        `${c.kind}: never started, one error event`,
      );

      // The API serves the failure to the owner the body names, and to nobody when it names none.
      const res = await fetch(`${gateway.url}/tasks/${c.id}`);
      if (c.owner === 'anonymous') {
        assert.equal(res.status, 200, c.kind);
        const body = (await res.json()) as { status: string; error: { code: string } };
        assert.equal(body.status, 'failed');
        assert.equal(body.error.code, c.reason);
      } else {
        assert.equal(res.status, 404, `${c.kind}: no owner, so no user may read it`);
      }

      // The ledger: the gateway never recorded these tasks, so the worker's event creates the row,
      // under the owner the body names ('' when it names none, and then no user lists it).
      const row = await waitFor(
        async () => {
          const r = await ledger?.get(c.id);
          return r?.status === 'failed' ? r : null;
        },
        20_000,
        `the ledger row (${c.kind})`,
      );
      assert.equal(row.error_code, c.reason, c.kind);
      assert.equal(row.owner, c.owner, c.kind);
      assert.ok(row.finished_at, c.kind);
    }

    // Termed, not nak'ed: nothing pending, nothing redelivered, one dead-letter copy each.
    const info = await consumerInfo(jsm, ns, 'python_q');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_redelivered, 0);
    assert.equal((await jsm.streams.info(ns.names.dlqStream)).state.messages, cases.length);
    for (const c of cases) {
      const lines = worker.lines.filter((l) => l.msg === 'message dead-lettered' && l.taskId === c.id);
      assert.equal(lines.length, 1, `${c.kind}: dead-lettered once`);
      assert.equal(lines[0]?.reason, c.reason);
    }

    // The same process serves the next task.
    const id = await submitTask(gateway.url, 'run_python', { python_script: 'print("ok")\n6*7' });
    const res = await fetch(`${gateway.url}/tasks/${id}?wait=60`);
    assert.equal(res.status, 200);
    const rec = (await res.json()) as { status: string; result: { result: { return_value: unknown } } };
    assert.equal(rec.status, 'succeeded');
    assert.equal(rec.result.result.return_value, 42);
    assert.equal(worker.proc.exitCode, null, 'the worker is still running');
    assert.equal(worker.proc.pid, pid);
    const started = (await progressEvents(clients, ns, id)).filter((e) => e.type === 'started');
    assert.deepEqual(started.map(startedData), [{ attempt: 1, worker: workerIdOf(worker) }]);
  });
});
