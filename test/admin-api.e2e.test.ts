// The admin API end to end (docs/admin-api.md): the real gateway and echo worker processes on real
// NATS, Redis and SQLite. Roles, the queue view with the worker's heartbeat, pausing (which
// outlives a worker restart), the cross-user task search and detail, dead letters re-driven and
// purged, replay, cancel, and the audit log of every action.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS, type TaskEnvelope, type TaskRecord } from '@neuroagent/contracts';
import { newTaskId } from '@neuroagent/platform';
import { gatewayEnv, signTaskHeaders, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { adminClaims, signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { apiCaller } from './support/http.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

const SECRET = randomBytes(32).toString('base64url');

interface QueueView {
  queue: string;
  paused: boolean;
  paused_by: string | null;
  consumer: { pending: number; ack_pending: number } | null;
  workers: { id: string; paused: boolean }[];
  replicas: number;
  rates: { minute: { succeeded: number; finished: number } };
}

describe('admin API', () => {
  const ns = testNamespace('admin');
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let ops = '';
  let alice = '';
  const workerSettings = workerEnv(ns, { TASKS_QUEUES: 'echo_q', TASKS_HEARTBEAT_INTERVAL_S: '0.5' });

  before(async () => {
    clients = await testClients(ns);
    worker = await startWorker(workerSettings);
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        NEUROAGENT_ADMIN__WORKER_STALE_S: '3',
      }),
    });
    ops = await signDevToken({
      secret: SECRET,
      sub: 'ops',
      expiresInS: 600,
      claims: adminClaims('roles', 'admin'),
    });
    alice = await signDevToken({ secret: SECRET, sub: 'alice', expiresInS: 600 });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  const call = apiCaller(() => gateway.url);
  const json = async <T>(res: Response, status: number): Promise<T> => {
    const text = await res.text();
    assert.equal(res.status, status, text);
    return JSON.parse(text) as T;
  };
  const submit = async (token: string, input: unknown) =>
    (await json<{ task_id: string }>(await call('POST', '/tasks', token, { task: 'echo', input }), 202))
      .task_id;
  const record = (id: string, token = alice) =>
    call('GET', `/tasks/${id}`, token).then((r) => r.json() as Promise<TaskRecord>);
  const echoQueue = async () =>
    (await json<{ queues: QueueView[] }>(await call('GET', '/admin/queues', ops), 200)).queues.find(
      (q) => q.queue === 'echo_q',
    ) as QueueView;

  it('answers 403 forbidden on every admin route to a caller without the role, 401 without a token', async () => {
    for (const [method, path] of [
      ['GET', '/admin/queues'],
      ['POST', '/admin/queues/echo_q/pause'],
      ['GET', '/admin/tasks'],
      ['GET', '/admin/dead-letters'],
      ['POST', '/admin/dead-letters/purge'],
      ['GET', '/admin/audit'],
    ] as const) {
      const res = await call(method, path, alice);
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(((await res.json()) as { code: string }).code, 'forbidden');
      assert.equal((await call(method, path, null)).status, 401);
    }
    assert.deepEqual(await json(await call('GET', '/me', alice), 200), { user_id: 'alice', admin: false });
    assert.deepEqual(await json(await call('GET', '/me', ops), 200), { user_id: 'ops', admin: true });
  });

  it("lists the queue's consumer, its worker from the heartbeat, and the finish rate", async () => {
    const id = await submit(alice, { payload: 'rate' });
    await waitFor(async () => (await record(id)).status === 'succeeded', 15_000, 'echo done');
    const q = await waitFor(
      async () => {
        const view = await echoQueue();
        return view.replicas === 1 && view.rates.minute.succeeded >= 1 ? view : null;
      },
      15_000,
      'queue view with one worker and a finished task',
    );
    assert.equal(q.paused, false);
    assert.ok(q.consumer, 'the durable consumer is listed');
    assert.match(q.workers[0]?.id ?? '', /:\d+$/);
    // Alice's GET /tasks is unchanged; the admin sees every owner's task and can filter.
    const page = await json<{ items: { id: string; owner: string }[] }>(
      await call('GET', '/admin/tasks?owner=alice&task=echo&status=succeeded', ops),
      200,
    );
    assert.ok(page.items.some((t) => t.id === id && t.owner === 'alice'));
    const none = await json<{ items: unknown[] }>(await call('GET', '/admin/tasks?owner=nobody', ops), 200);
    assert.equal(none.items.length, 0);
    assert.equal((await call('GET', '/admin/tasks?status=bogus', ops)).status, 400);
    const detail = await json<{ input: unknown; events: { type: string }[]; task: { owner: string } }>(
      await call('GET', `/admin/tasks/${id}`, ops),
      200,
    );
    assert.deepEqual(detail.input, { payload: 'rate' });
    assert.deepEqual(
      detail.events.map((e) => e.type),
      ['started', 'done'],
    );
    assert.equal(detail.task.owner, 'alice');
  });

  it('pauses a queue: a submission stays pending, also across a worker restart, until resume', async () => {
    const paused = await json<QueueView>(
      await call('POST', '/admin/queues/echo_q/pause', ops, { reason: 'deploy' }),
      200,
    );
    assert.equal(paused.paused, true);
    assert.equal(paused.paused_by, 'ops');
    await waitFor(
      async () => (await echoQueue()).workers[0]?.paused === true,
      10_000,
      'the worker reports paused',
    );
    const id = await submit(alice, { payload: 'held' });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await record(id)).status, 'pending');
    assert.equal((await echoQueue()).consumer?.pending, 1, 'the message waits in the stream');

    await worker.stop();
    worker = await startWorker(workerSettings);
    await waitFor(
      async () => (await echoQueue()).workers.some((w) => w.paused),
      10_000,
      'the new worker is paused',
    );
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await record(id)).status, 'pending', 'a restarted worker reads the pause before pulling');

    assert.equal(
      (await json<QueueView>(await call('POST', '/admin/queues/echo_q/resume', ops), 200)).paused,
      false,
    );
    await waitFor(
      async () => (await record(id)).status === 'succeeded',
      10_000,
      'the held task runs on resume',
    );
    assert.equal((await call('POST', '/admin/queues/nope_q/pause', ops)).status, 404);
  });

  it('lists dead letters, re-drives a valid one to success, skips a poison one, and purges', async () => {
    const deadId = newTaskId();
    const envelope: TaskEnvelope = {
      v: 1,
      queue: 'echo_q',
      task: 'echo',
      input: { payload: 'revived' },
      userId: 'alice',
      requestId: 'req-admin-dlq',
      submittedAt: new Date().toISOString(),
      startWithinS: 600,
    };
    const body = JSON.stringify(envelope);
    const original = ns.names.taskSubject('echo_q', deadId);
    const h = natsHeaders();
    h.set(HEADERS.taskName, 'echo');
    h.set(HEADERS.schemaVersion, '1');
    h.set(HEADERS.dlqReason, 'max_deliveries');
    h.set(HEADERS.dlqDetail, 'redis unreachable');
    h.set(HEADERS.dlqOrigSubject, original);
    h.set(HEADERS.dlqDeliveries, '5');
    signTaskHeaders(ns, deadId, body, h);
    const good = (await clients.js.publish(ns.names.dlqSubject(original), body, { headers: h })).seq;
    // A message signed with another key: it cannot be replayed as it is.
    const forged = natsHeaders();
    forged.set(HEADERS.dlqReason, 'bad_signature');
    forged.set(HEADERS.taskSignature, 'v1.AAAA');
    const poisonSubject = ns.names.taskSubject('echo_q', newTaskId());
    forged.set(HEADERS.dlqOrigSubject, poisonSubject);
    const bad = (await clients.js.publish(ns.names.dlqSubject(poisonSubject), body, { headers: forged })).seq;

    const list = await json<{
      items: { seq: number; reason: string; deliveries: number; replayable: boolean; task_id: string }[];
    }>(await call('GET', '/admin/dead-letters', ops), 200);
    const letter = list.items.find((d) => d.seq === good);
    assert.ok(letter);
    assert.equal(letter.reason, 'max_deliveries');
    assert.equal(letter.deliveries, 5);
    assert.equal(letter.task_id, deadId);
    assert.equal(letter.replayable, true);
    assert.equal(list.items.find((d) => d.seq === bad)?.replayable, false);
    const onePage = await json<{ items: unknown[]; next_cursor: string | null }>(
      await call('GET', '/admin/dead-letters?limit=1', ops),
      200,
    );
    assert.equal(onePage.items.length, 1);
    assert.equal(onePage.next_cursor, String(good));

    const report = await json<{ redriven: { seq: number; task_id: string }[]; skipped: { seq: number }[] }>(
      await call('POST', '/admin/dead-letters/redrive', ops, { seqs: [good, bad] }),
      200,
    );
    assert.deepEqual(
      report.skipped.map((s) => s.seq),
      [bad],
    );
    const newId = report.redriven[0]?.task_id ?? '';
    assert.notEqual(newId, deadId);
    await waitFor(async () => (await record(newId)).status === 'succeeded', 15_000, 're-driven task done');
    const after = await json<{ items: { seq: number }[] }>(
      await call('GET', '/admin/dead-letters', ops),
      200,
    );
    assert.deepEqual(
      after.items.map((d) => d.seq),
      [bad],
      'the re-driven letter left the DLQ, the poison stayed',
    );
    assert.equal((await call('POST', '/admin/dead-letters/redrive', ops, { seqs: [] })).status, 400);
    assert.deepEqual(await json(await call('POST', '/admin/dead-letters/purge', ops, { all: true }), 200), {
      purged: 1,
    });
  });

  it("replays and cancels any user's task, and audits every action", async () => {
    const id = await submit(alice, { payload: 'again' });
    await waitFor(async () => (await record(id)).status === 'succeeded', 15_000, 'echo done');
    const replay = await json<{ task_id: string; replay_of: string }>(
      await call('POST', `/admin/tasks/${id}/replay`, ops),
      202,
    );
    assert.equal(replay.replay_of, id);
    await waitFor(async () => (await record(replay.task_id)).status === 'succeeded', 15_000, 'replay done');

    const slow = await submit(alice, { delay_ms: 60_000 });
    await waitFor(async () => (await record(slow)).status === 'running', 15_000, 'slow echo running');
    await json(await call('POST', `/admin/tasks/${slow}/cancel`, ops), 202);
    await waitFor(async () => (await record(slow)).status === 'cancelled', 15_000, 'cancelled');
    assert.equal((await call('POST', `/admin/tasks/${slow}/cancel`, ops)).status, 409);
    assert.equal((await call('POST', '/admin/tasks/unknown-id/replay', ops)).status, 404);

    const audit = await json<{
      items: { actor: string; action: string; target: string; detail: { ok: boolean } }[];
    }>(await call('GET', '/admin/audit?limit=100', ops), 200);
    const actions = audit.items.map((a) => `${a.action} ${a.target} ${a.detail.ok}`).reverse();
    assert.deepEqual(actions, [
      'queue.pause echo_q true',
      'queue.resume echo_q true',
      'dlq.redrive dlq true',
      'dlq.purge dlq true',
      `task.replay ${id} true`,
      `task.cancel ${slow} true`,
      'task.replay unknown-id false',
    ]);
    assert.ok(audit.items.every((a) => a.actor === 'ops'));
    const pauses = await json<{ items: unknown[] }>(
      await call('GET', '/admin/audit?action=queue.pause', ops),
      200,
    );
    assert.equal(pauses.items.length, 1);
  });
});
