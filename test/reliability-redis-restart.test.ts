// Redis restart under load: a gateway and an echo_q worker on a private redis-server WITHOUT
// persistence, killed (SIGKILL) and restarted on the same port while long-poll waiters are open
// and tasks are running or queued. What the product guarantees, asserted here:
// - open waiters recover: they answer the final result, or 202 and a later GET ?wait= does;
// - the worker does not crash: a result it cannot write is an infrastructure error, nak'ed with
//   backoff and redelivered once Redis is back, then written (the worker rewrites meta from the
//   envelope, so the owner can read it although the gateway's meta was wiped);
// - submissions while Redis is down answer 503 result_backend_unavailable and are recorded failed;
// - tasks submitted after the restart succeed; the ledger keeps the final status of every task,
//   including those whose Redis result the restart wiped.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type PrivateServer, startPrivateRedis } from './support/private-servers.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import { listAllTasks } from './support/reliability-helpers.ts';

const CONCURRENCY = 4;
const RUNNING_MS = 2500;
const DOWN_MS = 2000;

interface Answer {
  status: number;
  body: TaskRecord & { code?: string };
  at: number;
}

describe('Redis restart (no persistence) under load', () => {
  const ns = testNamespace('redisrestart');
  let redis: PrivateServer;
  let clients: TestClients;
  let gateway: ServiceProcess & { url: string };
  let worker: ServiceProcess;

  before(async () => {
    redis = await startPrivateRedis();
    clients = await testClients(ns);
    worker = await startWorker(
      workerEnv(ns, {
        TASKS_REDIS__URL: redis.url,
        TASKS_QUEUES: 'echo_q',
        // Few slots, so some accepted tasks are still queued in JetStream when Redis restarts.
        TASKS_ECHO__CONCURRENCY: String(CONCURRENCY),
      }),
    );
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, { NEUROAGENT_REDIS__URL: redis.url }),
    });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
    await redis?.close();
  });

  const call = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${gateway.url}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' } }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Answer['body'], at: Date.now() };
  };
  const submit = async (payload: unknown, delayMs: number): Promise<string> => {
    const a = await call('POST', '/tasks', { task: 'echo', input: { payload, delay_ms: delayMs } });
    assert.equal(a.status, 202, JSON.stringify(a));
    return String((a.body as unknown as { task_id: string }).task_id);
  };
  const ledgerItems = () => listAllTasks(gateway.url);
  /** The final record, retrying through 404 (meta wiped, not started again yet) and 202. */
  const finalRecord = (id: string) =>
    waitFor(
      async () => {
        const a = await call('GET', `/tasks/${id}?wait=10`);
        return a.status === 200 ? a.body : null;
      },
      90_000,
      `the final record of ${id}`,
      200,
    );

  it('recovers waiters, retries the writes that failed, and serves results written after the restart', async () => {
    const pids = [gateway.proc.pid, worker.proc.pid];

    // Finished before the restart: the ledger has their final status before Redis is lost.
    const finishedBefore: string[] = [];
    for (let i = 0; i < 5; i++) finishedBefore.push(await submit({ before: i }, 0));
    for (const id of finishedBefore) assert.equal((await finalRecord(id)).status, 'succeeded');
    await waitFor(
      async () => {
        const items = await ledgerItems();
        return finishedBefore.every((id) => items.find((i) => i.id === id)?.status === 'succeeded');
      },
      30_000,
      'the ledger to record the tasks finished before the restart',
      200,
    );

    // Running (CONCURRENCY of them) or queued when Redis dies, each with a long-poll waiter open.
    const inFlight: string[] = [];
    for (let i = 0; i < CONCURRENCY * 3; i++) inFlight.push(await submit({ during: i }, RUNNING_MS));
    const waiters = inFlight.map((id) => call('GET', `/tasks/${id}?wait=45`));
    // And one SSE follower (the progress hub) on a task that is queued when Redis dies.
    const sse = sseUntilTerminal(String(inFlight.at(-1)), 60_000);
    await waitFor(
      async () => {
        const running = await Promise.all(inFlight.map((id) => call('GET', `/tasks/${id}`)));
        return running.filter((a) => a.body.status === 'running').length === CONCURRENCY;
      },
      20_000,
      'the first tasks to be running',
      100,
    );
    const waitersBefore = await metric('long_poll_waiters');

    const killedAt = Date.now();
    await redis.stop('SIGKILL');
    // While Redis is down: a submission fails cleanly and leaves no pending task.
    const downSubmit = await call('POST', '/tasks', { task: 'echo', input: { payload: 'down' } });
    const downRead = await call('GET', `/tasks/${inFlight[0]}`);
    await sleep(Math.max(0, DOWN_MS - (Date.now() - killedAt)));
    await redis.start();
    const restartedAt = Date.now();

    assert.equal(downSubmit.status, 503, JSON.stringify(downSubmit));
    assert.equal(downSubmit.body.code, 'result_backend_unavailable');
    // A read while Redis is down: 503 with a stable code the client may retry on, not a 500.
    assert.equal(downRead.status, 503, JSON.stringify(downRead));
    assert.equal(downRead.body.code, 'result_backend_unavailable');

    // Submitted after the restart: succeed.
    const afterIds: string[] = [];
    for (let i = 0; i < 5; i++) afterIds.push(await submit({ after: i }, 0));
    const acceptedMs = Date.now() - restartedAt;
    for (const [i, id] of afterIds.entries()) {
      const rec = await finalRecord(id);
      assert.equal(rec.status, 'succeeded');
      assert.deepEqual((rec.result as { payload: unknown }).payload, { after: i });
    }
    const afterDoneMs = Date.now() - restartedAt;

    // Open waiters: the final result, or 202 (and then a later GET ?wait= has it). Never an error.
    const answers = await Promise.all(waiters);
    for (const a of answers) {
      assert.ok(a.status === 200 || a.status === 202, `waiter answered ${JSON.stringify(a)}`);
      if (a.status === 200) assert.equal(a.body.status, 'succeeded', JSON.stringify(a));
    }
    const sseEvents = await sse;
    assert.equal(sseEvents.at(-1), 'done', `the SSE stream ended with done: ${sseEvents.join(',')}`);
    const attempts: number[] = [];
    for (const [i, id] of inFlight.entries()) {
      const rec = await finalRecord(id);
      assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
      assert.deepEqual((rec.result as { payload: unknown }).payload, { during: i });
      attempts.push(rec.attempts);
    }
    // The tasks running when Redis died could not store their results: retried, not lost.
    assert.ok(
      attempts.filter((a) => a >= 2).length >= 1,
      `a task whose result write failed ran again: attempts ${attempts.join(',')}`,
    );
    assert.ok(
      worker.lines.some((l) => l.msg === 'infrastructure error: task will be retried'),
      'the failed write was nak’ed for a retry',
    );
    assert.ok(
      !worker.lines.some((l) => l.msg === 'message dead-lettered'),
      'nothing was dead-lettered: the retries outlasted the outage',
    );

    // The ledger has the final status of every task, including those Redis forgot.
    const rejectedId = await waitFor(
      async () => {
        const items = await ledgerItems();
        const open = items.filter((i) => i.status === 'pending' || i.status === 'running');
        if (open.length > 0) return null;
        for (const id of [...finishedBefore, ...inFlight, ...afterIds]) {
          assert.equal(items.find((i) => i.id === id)?.status, 'succeeded', id);
        }
        const failed = items.filter((i) => i.status === 'failed');
        assert.equal(
          failed.length,
          1,
          `one failed row, the submission made while down: ${JSON.stringify(failed)}`,
        );
        assert.equal(failed[0]?.error_code, 'result_backend_unavailable');
        return failed[0]?.id;
      },
      60_000,
      'every ledger row to be final',
      500,
    );
    assert.ok(rejectedId);

    // A task finished before the restart lost its Redis meta and result: GET /tasks/{id} answers
    // from the ledger (status, times, attempts; the result itself is gone).
    const forgotten = await Promise.all(finishedBefore.map((id) => call('GET', `/tasks/${id}`)));
    for (const [i, a] of forgotten.entries()) {
      assert.equal(a.status, 200, `GET of ${finishedBefore[i]} after the restart`);
      assert.equal(a.body.status, 'succeeded');
      assert.equal(a.body.id, finishedBefore[i]);
      assert.equal(a.body.result, undefined, 'the result was only in Redis');
    }

    assert.deepEqual([gateway.proc.pid, worker.proc.pid], pids, 'nobody was restarted');
    for (const p of [gateway, worker]) assert.equal(p.proc.exitCode, null, 'still running');
    const figures = {
      waitersOpenAtKill: waitersBefore,
      waiterAnswers: answers.map((a) => a.status),
      sseEvents,
      waiterAnswerMsAfterRestart: answers.map((a) => a.at - restartedAt),
      attemptsOfInFlight: attempts,
      downSubmit: `${downSubmit.status} ${downSubmit.body.code}`,
      downRead: `${downRead.status} ${downRead.body.code}`,
      finishedBeforeGet: forgotten.map((a) => `${a.status} ${a.body.code ?? a.body.status}`),
      outageMs: restartedAt - killedAt,
      fiveNewTasksAcceptedMsAfterRestart: acceptedMs,
      // Behind the backlog of in-flight tasks (CONCURRENCY slots, RUNNING_MS each).
      fiveNewTasksDoneMsAfterRestart: afterDoneMs,
    };
    process.stderr.write(`redis restart figures: ${JSON.stringify(figures)}\n`);
    const warnings = new Map<string, number>();
    for (const l of [...gateway.lines, ...worker.lines]) {
      if (Number(l.level) >= 40) warnings.set(String(l.msg), (warnings.get(String(l.msg)) ?? 0) + 1);
    }
    process.stderr.write(`warnings logged: ${JSON.stringify(Object.fromEntries(warnings))}\n`);
  });

  /** The event types of GET /tasks/{id}/events until the stream ends (or the timeout). */
  async function sseUntilTerminal(id: string, timeoutMs: number): Promise<string[]> {
    const res = await fetch(`${gateway.url}/tasks/${id}/events`, { signal: AbortSignal.timeout(timeoutMs) });
    const types: string[] = [];
    try {
      let text = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += Buffer.from(chunk).toString('utf8');
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const type = /^event: (\w+)$/m.exec(text.slice(0, end))?.[1];
          if (type) types.push(type);
          text = text.slice(end + 2);
        }
      }
    } catch (err) {
      types.push(`aborted: ${(err as Error).name}`);
    }
    return types;
  }

  async function metric(name: string): Promise<number> {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line?.split(' ')[1] ?? Number.NaN);
  }
});
