// Two gateway processes sharing NATS, Redis and one PostgreSQL ledger, with one echo_q worker: a task
// submitted on A is awaited, followed (SSE) and cancelled on B; every status change reaches the
// ledger exactly once; when A is SIGKILLed, its waiting clients get their result from B, and the
// tasks:events entries A had read but not acknowledged are taken over by B.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { createPostgresDatabase } from '../services/gateway/test/postgres-db.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

const SECRET = randomBytes(32).toString('base64url');
const CLAIM_IDLE_S = 2;

describe('two gateways sharing NATS, Redis and the ledger', () => {
  const ns = testNamespace('multigw');
  let db: { url: string; drop(): Promise<void> };
  let clients: TestClients;
  let worker: ServiceProcess;
  let a: ServiceProcess & { url: string };
  let b: ServiceProcess & { url: string };
  let token = '';

  before(async () => {
    db = await createPostgresDatabase('multigw');
    clients = await testClients(ns);
    worker = await startWorker(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
    const env = {
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        NEUROAGENT_DB__URL: db.url,
        NEUROAGENT_DB__EVENTS_CLAIM_IDLE_S: String(CLAIM_IDLE_S),
      }),
    };
    a = await startGateway(env);
    b = await startGateway(env);
    token = await signDevToken({ secret: SECRET, sub: 'gwen', expiresInS: 600 });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await worker?.stop();
    await clients?.close();
    await db?.drop();
  });

  const auth = () => ({ authorization: `Bearer ${token}` });
  const submit = async (url: string, input: unknown): Promise<string> => {
    const res = await fetch(`${url}/tasks`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'echo', input }),
    });
    assert.equal(res.status, 202);
    return ((await res.json()) as { task_id: string }).task_id;
  };
  const read = async (url: string, id: string, waitS = 0) => {
    const res = await fetch(`${url}/tasks/${id}?wait=${waitS}`, { headers: auth() });
    return { status: res.status, record: (await res.json()) as TaskRecord };
  };
  const sseEvents = async (url: string, id: string): Promise<string[]> => {
    const res = await fetch(`${url}/tasks/${id}/events`, { headers: auth() });
    assert.equal(res.status, 200);
    const text = await res.text(); // the stream ends after the terminal event
    return [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1] as string);
  };
  const counter = async (url: string, name: string): Promise<number> => {
    const text = await (await fetch(`${url}/metrics`)).text();
    return [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'gm'))].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  };

  it('submit on A, wait and follow on B', async () => {
    const id = await submit(a.url, { payload: 'ab', delay_ms: 800 });
    const [events, waited] = await Promise.all([sseEvents(b.url, id), read(b.url, id, 20)]);
    assert.equal(waited.status, 200);
    assert.equal(waited.record.status, 'succeeded');
    assert.deepEqual(waited.record.result, { payload: 'ab', attempt: 1 });
    assert.deepEqual(events, ['started', 'done']);
  });

  it('cancel on B a task submitted on A', async () => {
    const id = await submit(a.url, { payload: 'long', delay_ms: 60_000 });
    await waitFor(async () => (await read(b.url, id)).record.status === 'running' || null, 20_000, 'running');
    const cancel = await fetch(`${b.url}/tasks/${id}`, { method: 'DELETE', headers: auth() });
    assert.equal(cancel.status, 202);
    const ended = await read(a.url, id, 20);
    assert.equal(ended.record.status, 'cancelled');
  });

  it('writes each status change to the ledger exactly once, whichever gateway reads it', async () => {
    const before =
      (await counter(a.url, 'tasks_completed_total')) + (await counter(b.url, 'tasks_completed_total'));
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => submit(i % 2 === 0 ? a.url : b.url, { payload: i })),
    );
    for (const id of ids) assert.equal((await read(b.url, id, 20)).record.status, 'succeeded');
    // Both gateways' ledger consumers share one group: the two counters add up to the tasks, once.
    const total = await waitFor(
      async () => {
        const n =
          (await counter(a.url, 'tasks_completed_total')) + (await counter(b.url, 'tasks_completed_total'));
        return n - before >= ids.length ? n - before : null;
      },
      20_000,
      'the ledger to record every completion',
      200,
    );
    await sleep(500);
    const settled =
      (await counter(a.url, 'tasks_completed_total')) + (await counter(b.url, 'tasks_completed_total'));
    assert.equal(total, ids.length);
    assert.equal(settled - before, ids.length, 'no completion applied twice');
  });

  it('survives SIGKILL of A: its waiters get their result from B, and B takes over what A had read', async () => {
    // A waiter on A for a task that ends after A is gone.
    const waited = await submit(a.url, { payload: 'survive', delay_ms: 2000 });
    const onA = read(a.url, waited, 30).then(
      () => 'answered',
      () => 'connection lost',
    );
    // A, frozen, still holds a blocked XREADGROUP: the next tasks:events entries are delivered to it
    // and stay in its pending list, unacknowledged.
    a.proc.kill('SIGSTOP');
    const frozenIds = await Promise.all(
      Array.from({ length: 6 }, (_, i) => submit(b.url, { payload: `f${i}` })),
    );
    for (const id of frozenIds) assert.equal((await read(b.url, id, 20)).record.status, 'succeeded');
    const pendingOfA = async () => {
      const consumers = (await clients.redis.xinfo(
        'CONSUMERS',
        ns.names.eventsKeys()[0] as string,
        'ledger',
      )) as unknown[][];
      const pending = consumers.map((c) => {
        const f = new Map<string, unknown>();
        for (let i = 0; i + 1 < c.length; i += 2) f.set(String(c[i]), c[i + 1]);
        return { name: String(f.get('name')), pending: Number(f.get('pending')) };
      });
      return pending.find((c) => c.name.endsWith(`-${a.proc.pid}`) || c.name.includes(`-${a.proc.pid}-`));
    };
    const held = await pendingOfA();
    assert.ok(held && held.pending > 0, `A holds unacknowledged entries: ${JSON.stringify(held)}`);
    a.proc.kill('SIGKILL');
    await a.exited;
    assert.equal(await onA, 'connection lost');

    // The client reconnects to B and gets the result.
    const fromB = await read(b.url, waited, 30);
    assert.equal(fromB.status, 200);
    assert.deepEqual(fromB.record.result, { payload: 'survive', attempt: 1 });

    // B claims A's entries once idle, and the ledger has every task final.
    await waitFor(
      async () => ((await pendingOfA())?.pending === 0 ? true : null),
      20_000,
      "A's entries claimed",
      250,
    );
    const list = await waitFor(
      async () => {
        const res = await fetch(`${b.url}/tasks?limit=100`, { headers: auth() });
        const items = ((await res.json()) as { items: TaskRecord[] }).items;
        const mine = items.filter((i) => frozenIds.includes(i.id) || i.id === waited);
        return mine.length === frozenIds.length + 1 && mine.every((i) => i.status === 'succeeded')
          ? mine
          : null;
      },
      20_000,
      'the ledger rows of the frozen period',
      250,
    );
    assert.equal(list.length, frozenIds.length + 1);
  });
});
