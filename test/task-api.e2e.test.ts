// The full task API with authentication, ownership, rate limits, the ledger, SSE, cancellation,
// OpenAPI and metrics: the real gateway and worker processes on real NATS, Redis and SQLite.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { apiCaller } from './support/http.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

const SECRET = randomBytes(32).toString('base64url');
const BUSY = (s: number) => `import time\nt = time.time()\nwhile time.time() - t < ${s}:\n    pass\n"done"`;

describe('task API with auth, ownership, limits and the ledger', () => {
  const ns = testNamespace('taskapi');
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let alice = '';
  let bob = '';

  before(async () => {
    clients = await testClients(ns);
    worker = await startWorker(workerEnv(ns, { TASKS_PYTHON__THREADS: '1', TASKS_PYTHON__TIMEOUT_S: '30' }));
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        NEUROAGENT_RATE_LIMIT__DISABLED: 'false',
        NEUROAGENT_RATE_LIMIT__KEY_PREFIX: `rl${ns.id}`,
        NEUROAGENT_RATE_LIMIT__SUBMIT_POINTS: '30',
      }),
    });
    alice = await signDevToken({ secret: SECRET, sub: 'alice', expiresInS: 600 });
    bob = await signDevToken({ secret: SECRET, sub: 'bob', expiresInS: 600 });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  const call = apiCaller(() => gateway.url);
  const submit = async (token: string, script: string) => {
    const res = await call('POST', '/tasks', token, { task: 'run_python', input: { python_script: script } });
    assert.equal(res.status, 202);
    return ((await res.json()) as { task_id: string }).task_id;
  };

  it('answers 401 without a valid token, and leaves probes and the API description public', async () => {
    const none = await call('GET', '/tasks', null);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { code: string }).code, 'unauthenticated');
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const forged = await signDevToken({
      secret: randomBytes(32).toString('base64url'),
      sub: 'alice',
      expiresInS: 60,
    });
    const bad = await call('GET', '/tasks', forged);
    assert.equal(((await bad.json()) as { code: string }).code, 'invalid_token');
    for (const path of ['/healthz', '/openapi.json', '/metrics'])
      assert.equal((await call('GET', path, null)).status, 200, path);
  });

  it('POST /tasks submits any registered task; GET /tasks/{id}?wait returns its record', async () => {
    const id = await submit(alice, '6*7');
    const res = await call('GET', `/tasks/${id}?wait=20`, alice);
    assert.equal(res.status, 200);
    const rec = (await res.json()) as TaskRecord & { result: { result: { return_value: number } } };
    assert.equal(rec.status, 'succeeded');
    assert.equal(rec.result.result.return_value, 42);
    const unknown = await call('POST', '/tasks', alice, { task: 'mine_bitcoin', input: {} });
    assert.equal(unknown.status, 404);
    const badInput = await call('POST', '/tasks', alice, { task: 'run_python', input: { python_script: 1 } });
    assert.equal(badInput.status, 400);
    assert.equal(
      ((await badInput.json()) as { details: { path: string }[] }).details[0]?.path,
      '/input/python_script',
    );
  });

  it('blocks every cross-user read: record, events, cancel, list, file', async () => {
    const id = await submit(alice, '1');
    await waitFor(
      async () => (await call('GET', `/tasks/${id}`, alice)).status === 200,
      20_000,
      'alice task',
    );
    for (const [method, path] of [
      ['GET', `/tasks/${id}`],
      ['GET', `/tasks/${id}/events`],
      ['DELETE', `/tasks/${id}`],
      ['GET', `/storage/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/presigned-url`],
    ] as const) {
      const res = await call(method, path, bob);
      assert.ok(
        res.status === 404 || (path.startsWith('/storage') && res.status === 503),
        `${method} ${path}: ${res.status}`,
      );
      await res.arrayBuffer();
    }
    const list = (await (await call('GET', '/tasks', bob)).json()) as { items: { id: string }[] };
    assert.ok(!list.items.some((t) => t.id === id));
  });

  it('streams the event sequence over SSE and closes after the terminal event', async () => {
    const id = await submit(alice, 'print("hi")\n1');
    const res = await call('GET', `/tasks/${id}/events`, alice);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text(); // ends when the server closes the stream
    const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    assert.deepEqual(events, ['started', 'done']);
    assert.match(text, /^id: \d+-\d+$/m);
  });

  it('cancels a pending task (it never starts) and a running one (it is interrupted)', async () => {
    const busy = await submit(alice, BUSY(3));
    await waitFor(
      async () => (await clients.store.readRecord(busy))?.status === 'running',
      20_000,
      'busy running',
    );
    const pending = await submit(alice, '"should not run"'); // the only thread is busy
    const del = await call('DELETE', `/tasks/${pending}`, alice);
    assert.equal(del.status, 202);
    const running = busy;
    const delRunning = await call('DELETE', `/tasks/${running}`, alice);
    assert.equal(delRunning.status, 202);
    for (const id of [running, pending]) {
      const rec = await waitFor(
        async () => {
          const r = (await (await call('GET', `/tasks/${id}?wait=10`, alice)).json()) as TaskRecord;
          return r.status === 'cancelled' ? r : null;
        },
        30_000,
        `task ${id} cancelled`,
      );
      assert.equal(rec.error?.code, 'cancelled');
    }
    const events = await clients.redis.xrange(ns.names.progressKey(pending), '-', '+');
    assert.ok(!events.some(([, f]) => f[1] === 'started'), 'the pending task never started');
    assert.equal((await call('DELETE', `/tasks/${pending}`, alice)).status, 409);
  });

  it('records in the ledger a task that completed while no client waited', async () => {
    const id = await submit(alice, '2+2');
    const item = await waitFor(
      async () => {
        const page = (await (await call('GET', '/tasks?status=succeeded&limit=100', alice)).json()) as {
          items: { id: string; status: string; attempts: number }[];
        };
        return page.items.find((t) => t.id === id);
      },
      20_000,
      'the ledger to show the task as succeeded',
    );
    assert.equal(item.status, 'succeeded');
  });

  it('paginates GET /tasks newest first with a cursor', async () => {
    const page1 = (await (await call('GET', '/tasks?limit=2', alice)).json()) as {
      items: { id: string }[];
      next_cursor: string | null;
    };
    assert.equal(page1.items.length, 2);
    assert.ok(page1.next_cursor);
    const page2 = (await (await call('GET', `/tasks?limit=2&cursor=${page1.next_cursor}`, alice)).json()) as {
      items: { id: string }[];
    };
    assert.ok(page2.items.length > 0);
    assert.ok(
      page1.items.every((a) => page2.items.every((b) => a.id > b.id)),
      'newest (largest UUIDv7) first',
    );
    assert.equal((await call('GET', '/tasks?status=bogus', alice)).status, 400);
  });

  it('rate-limits submissions per user, with headers, 429 and retry-after', async () => {
    const budget = (await (await call('GET', '/rate-limit', bob)).json()) as {
      submit: { limit: number; remaining: number };
    };
    assert.equal(budget.submit.limit, 30);
    const statuses: number[] = [];
    for (let i = 0; i < budget.submit.remaining + 2; i++) {
      const res = await call('POST', '/tasks', bob, { task: 'run_python', input: { python_script: '1' } });
      statuses.push(res.status);
      if (res.status === 429) assert.ok(Number(res.headers.get('retry-after')) > 0);
      assert.equal(res.headers.get('x-ratelimit-limit'), '30');
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses.filter((s) => s === 429).length, 2);
    assert.equal(
      (await call('POST', '/tasks', alice, { task: 'run_python', input: { python_script: '1' } })).status,
      202,
      'alice is not limited by bob',
    );
  });

  it('exports metrics: submissions by queue and HTTP latency by route template', async () => {
    const text = await (await call('GET', '/metrics', null)).text();
    assert.match(text, /tasks_submitted_total\{queue="python_q"\} \d+/);
    // Completions are labelled with the queue the worker reports on tasks:events.
    assert.match(text, /tasks_completed_total\{queue="python_q"\} [1-9]\d*/);
    assert.match(text, /http_request_duration_seconds_count\{[^}]*route="\/tasks\/:id"/);
    assert.match(text, /rate_limit_rejections_total\{route="submit"\} 2/);
  });

  it('serves 1,000 concurrent long polls over one blocking Redis connection', async () => {
    // Circuit tasks stay pending: no circuit worker runs in this test.
    const carol = await signDevToken({ secret: SECRET, sub: 'carol', expiresInS: 600 });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await call('POST', '/tasks', carol, {
        task: 'circuit_population_analysis',
        input: { presigned_url: 'https://example.invalid/circuit.gz', sql: 'SELECT 1' },
      });
      assert.equal(res.status, 202);
      ids.push(((await res.json()) as { task_id: string }).task_id);
    }
    const polls = Array.from({ length: 1000 }, (_, i) =>
      call('GET', `/tasks/${ids[i % ids.length]}?wait=15`, carol),
    );
    // Every poll is registered with the hub before the connections are counted.
    const waiting = await waitFor(
      async () => {
        const m = /long_poll_waiters (\d+)/.exec(await (await call('GET', '/metrics', null)).text());
        return m && Number(m[1]) >= 1000 ? Number(m[1]) : null;
      },
      12_000,
      '1,000 waiters',
      200,
    );
    assert.equal(waiting, 1000);
    const clientList = String(await clients.redis.client('LIST')).split('\n');
    const longPoll = clientList.filter((l) => l.includes('name=gateway-longpoll'));
    assert.equal(longPoll.length, 1, 'one blocking connection serves every waiter');
    const gatewayConnections = clientList.filter((l) => /name=gateway(-|\s|$)/.test(l));
    assert.ok(
      gatewayConnections.length <= 4,
      `the gateway holds ${gatewayConnections.length} Redis connections`,
    );
    const statuses = await Promise.all(polls.map(async (p) => (await p).status));
    assert.ok(
      statuses.every((s) => s === 202),
      'every poll answered 202 at its wait',
    );
  });
});
