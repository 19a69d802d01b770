// The built-in echo task end to end (real gateway with auth and rate limits, real echo_q worker):
// POST /tasks?wait= answers 200 with the finished record in one request, 202 when the wait ends
// first; every stage of the request is reported in Server-Timing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, workerEnv } from '@neuroagent/platform/testing';
import { signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

const SECRET = randomBytes(32).toString('base64url');

describe('echo task and POST /tasks?wait=', () => {
  const ns = testNamespace('echo');
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let token = '';

  before(async () => {
    clients = await testClients(ns);
    worker = await startWorker(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        NEUROAGENT_RATE_LIMIT__DISABLED: 'false',
        NEUROAGENT_RATE_LIMIT__KEY_PREFIX: `rl${ns.id}`,
      }),
    });
    token = await signDevToken({ secret: SECRET, sub: 'erin', expiresInS: 600 });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  const submit = (input: unknown, query = '', timed = true) =>
    fetch(`${gateway.url}/tasks${query}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        ...(timed ? { 'x-server-timing': '1' } : {}),
      },
      body: JSON.stringify({ task: 'echo', input }),
    });

  it('returns the payload in one request, with every stage in Server-Timing when asked', async () => {
    const payload = { a: [1, 'two', null], nested: { ok: true } };
    const untimed = await submit({ payload }, '?wait=10', false);
    assert.equal(untimed.status, 200);
    assert.equal(untimed.headers.get('server-timing'), null, 'no Server-Timing unless asked');
    const res = await submit({ payload }, '?wait=10');
    assert.equal(res.status, 200);
    const record = (await res.json()) as TaskRecord;
    assert.equal(record.status, 'succeeded');
    assert.equal(record.task, 'echo');
    assert.equal(record.queue, 'echo_q');
    assert.deepEqual(record.result, { payload, attempt: 1 });
    assert.equal(res.headers.get('location'), `/tasks/${record.id}`);
    const stages = (res.headers.get('server-timing') ?? '').split(',').map((s) => s.trim().split(';')[0]);
    for (const stage of ['auth', 'ratelimit', 'meta', 'ledger', 'publish', 'wait']) {
      assert.ok(stages.includes(stage), `Server-Timing has ${stage}: ${res.headers.get('server-timing')}`);
    }
    // The record came with the worker's event (it is small): nothing was read back from Redis.
    assert.ok(!stages.includes('read'), `no read stage: ${res.headers.get('server-timing')}`);
    const again = await fetch(`${gateway.url}/tasks/${record.id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.deepEqual(((await again.json()) as TaskRecord).result, { payload, attempt: 1 });
  });

  it('answers a repeated Idempotency-Key with the finished task at once, without running it again', async () => {
    const keyed = (payload: unknown) =>
      fetch(`${gateway.url}/tasks?wait=20`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'idempotency-key': `echo-${ns.id}`,
        },
        body: JSON.stringify({ task: 'echo', input: { payload } }),
      });
    const first = await keyed('once');
    assert.equal(first.status, 200);
    const done = (await first.json()) as TaskRecord;
    const started = Date.now();
    const again = await keyed('once');
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual((await again.json()) as TaskRecord, done, 'the same record: same task, same attempt');
    // The task ended before the repeat arrived: the repeat must not wait for an event long gone.
    assert.ok(Date.now() - started < 10_000, 'answered without waiting out ?wait=20');
  });

  it('reads the record back when it is too large to travel with the event', async () => {
    const payload = 'x'.repeat(4096); // over TASKS_REDIS__EVENT_RECORD_MAX_BYTES (1024)
    const res = await submit({ payload }, '?wait=10');
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as TaskRecord).result, { payload, attempt: 1 });
    assert.match(res.headers.get('server-timing') ?? '', /\bread;dur=/);
  });

  it('answers 202 when the wait ends first, and the task still finishes', async () => {
    const res = await submit({ payload: 'slow', delay_ms: 1500 }, '?wait=0.2');
    assert.equal(res.status, 202);
    const { task_id: id } = (await res.json()) as { task_id: string };
    const done = await fetch(`${gateway.url}/tasks/${id}?wait=10`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(done.status, 200);
    assert.deepEqual(((await done.json()) as TaskRecord).result, { payload: 'slow', attempt: 1 });
  });

  it('answers 202 at once without ?wait=, and 400 for a bad wait or bad input', async () => {
    const res = await submit({ payload: 1 });
    assert.equal(res.status, 202);
    assert.equal((await submit({ payload: 1 }, '?wait=soon')).status, 400);
    assert.equal((await submit({ payload: 1 }, '?wait=100000')).status, 400);
    const bad = await submit({ delay_ms: -1 }, '?wait=1');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'invalid_request');
  });

  it('cancels an echo that is holding its slot', async () => {
    const res = await submit({ delay_ms: 60_000 });
    const { task_id: id } = (await res.json()) as { task_id: string };
    await new Promise((r) => setTimeout(r, 500));
    const del = await fetch(`${gateway.url}/tasks/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(del.status, 202);
    const t0 = performance.now();
    const done = await fetch(`${gateway.url}/tasks/${id}?wait=10`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(((await done.json()) as TaskRecord).status, 'cancelled');
    assert.ok(performance.now() - t0 < 5000, 'the delay was cut short');
  });
});
