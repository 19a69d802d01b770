// NATS restart under load: a gateway and two echo_q workers on a private nats-server; clients
// submit continuously while the server is SIGKILLed and restarted on the same port and store dir.
// Every submission the gateway acknowledged (202, after the JetStream PubAck) must end succeeded;
// a submission made while NATS is down must fail with 503 queue_unavailable and be recorded as
// failed in the ledger (never pending forever); the gateway and the workers reconnect on their own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type PrivateServer, startPrivateNats } from './support/private-servers.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import { type LedgerItem, listAllTasks, type Submission } from './support/reliability-helpers.ts';

const SUBMITTERS = 6;
const LOAD_MS = 10_000;
const KILL_AT_MS = 3_000;
const DOWN_MS = 2_500;
const PUBLISH_TIMEOUT_MS = 1_500;

describe('NATS restart under load', () => {
  const ns = testNamespace('natsrestart');
  let nats: PrivateServer;
  let clients: TestClients;
  let gateway: ServiceProcess & { url: string };
  const workers: ServiceProcess[] = [];

  before(async () => {
    nats = await startPrivateNats();
    clients = await testClients(ns);
    const wenv = workerEnv(ns, {
      TASKS_NATS__URL: nats.url,
      TASKS_QUEUES: 'echo_q',
      // A message whose delivery or ack was lost with the server comes back after AckWait.
      TASKS_NATS__ACK_WAIT_S: '5',
      TASKS_NATS__RETRY_BASE_MS: '200',
    });
    workers.push(await startWorker(wenv));
    workers.push(await startWorker(wenv));
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_NATS__URL: nats.url,
        NEUROAGENT_NATS__PUBLISH_TIMEOUT_MS: String(PUBLISH_TIMEOUT_MS),
      }),
    });
  });

  after(async () => {
    await gateway?.stop();
    for (const w of workers) await w.stop();
    await clients?.close();
    await nats?.close();
  });

  const post = async (n: number): Promise<Submission> => {
    const sentAt = Date.now();
    const res = await fetch(`${gateway.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'echo', input: { payload: { n }, delay_ms: 20 } }),
    });
    const body = (await res.json()) as { task_id?: string; code?: string };
    const s: Submission = { n, sentAt, answeredAt: Date.now(), status: res.status };
    if (body.task_id !== undefined) s.taskId = body.task_id;
    if (body.code !== undefined) s.code = body.code;
    return s;
  };

  const waitResult = async (
    taskId: string,
    timeoutS: number,
  ): Promise<{ status: number; rec: TaskRecord }> => {
    const res = await fetch(`${gateway.url}/tasks/${taskId}?wait=${timeoutS}`);
    return { status: res.status, rec: (await res.json()) as TaskRecord };
  };

  it('loses no acknowledged task, rejects cleanly while down, and everyone reconnects', async () => {
    const pids = [gateway.proc.pid, ...workers.map((w) => w.proc.pid)];
    const warm = await post(-1);
    assert.equal(warm.status, 202, `warm-up submission: ${JSON.stringify(warm)}`);
    assert.equal((await waitResult(String(warm.taskId), 20)).status, 200);

    const submissions: Submission[] = [];
    const start = Date.now();
    let counter = 0;
    const submitter = async () => {
      while (Date.now() - start < LOAD_MS) {
        const n = counter++;
        submissions.push(await post(n));
      }
    };
    let killedAt = 0;
    let restartedAt = 0;
    const chaos = (async () => {
      await sleep(KILL_AT_MS);
      killedAt = Date.now();
      await nats.stop('SIGKILL');
      await sleep(DOWN_MS);
      await nats.start();
      restartedAt = Date.now();
    })();
    // After the restart, one client submits and waits in turn: the first end-to-end success.
    let firstSuccessAfterRestart = 0;
    const probe = (async () => {
      await chaos;
      while (firstSuccessAfterRestart === 0 && Date.now() - restartedAt < 60_000) {
        const s = await post(-2);
        if (s.status === 202 && (await waitResult(String(s.taskId), 10)).status === 200) {
          firstSuccessAfterRestart = Date.now();
        } else await sleep(100);
      }
    })();
    await Promise.all([...Array.from({ length: SUBMITTERS }, submitter), chaos, probe]);
    assert.ok(restartedAt > 0 && killedAt > 0);

    const accepted = submissions.filter((s) => s.status === 202);
    const rejected = submissions.filter((s) => s.status !== 202);
    for (const s of rejected) {
      assert.equal(s.status, 503, `a submission answered neither 202 nor 503: ${JSON.stringify(s)}`);
      assert.equal(s.code, 'queue_unavailable', `unexpected error code: ${JSON.stringify(s)}`);
      // Rejections happen only around the outage (a request sent just before the kill can time out).
      assert.ok(
        s.answeredAt >= killedAt && s.sentAt <= restartedAt + PUBLISH_TIMEOUT_MS + 1000,
        `rejected outside the outage: ${JSON.stringify(s)} killed ${killedAt} restarted ${restartedAt}`,
      );
    }
    assert.ok(rejected.length > 0, 'submissions during the outage are rejected');
    const before = accepted.filter((s) => s.answeredAt < killedAt).length;
    const afterRestart = accepted.filter((s) => s.sentAt > restartedAt).length;
    assert.ok(before > 0, 'tasks were accepted before the kill');
    assert.ok(afterRestart > 0, 'tasks are accepted again after the restart, by the same gateway');
    assert.ok(firstSuccessAfterRestart > 0, 'a task submitted after the restart completed');

    // Every acknowledged submission reaches succeeded with its own payload.
    const pending = [...accepted];
    const lost: string[] = [];
    const readers = Array.from({ length: 8 }, async () => {
      for (let s = pending.shift(); s !== undefined; s = pending.shift()) {
        const deadline = Date.now() + 60_000;
        let done: TaskRecord | null = null;
        while (done === null && Date.now() < deadline) {
          const r = await waitResult(String(s.taskId), 20);
          if (r.status === 200) done = r.rec;
        }
        if (done?.status !== 'succeeded') {
          lost.push(`${s.taskId}: ${JSON.stringify(done)}`);
          continue;
        }
        assert.deepEqual((done.result as { payload: unknown }).payload, { n: s.n });
      }
    });
    await Promise.all(readers);
    assert.deepEqual(lost, [], 'every acknowledged task succeeded');

    // The ledger: accepted ones succeeded, rejected ones failed/queue_unavailable, none left pending.
    const ids = new Set(accepted.map((s) => s.taskId));
    const ledger = await waitFor(
      async () => {
        const items = await listAllTasks(gateway.url);
        const open = items.filter((i) => i.status === 'pending' || i.status === 'running');
        return open.length === 0 ? items : null;
      },
      60_000,
      'every ledger row to reach a final status',
      500,
    );
    const ledgerSucceeded = ledger.filter((i) => i.status === 'succeeded');
    const ledgerFailed = ledger.filter((i) => i.status === 'failed');
    for (const i of ledgerSucceeded.filter((x) => !ids.has(x.id))) {
      // Only the warm-up and the probe's submissions are outside the counted load.
      assert.ok(i.id === warm.taskId || !submissions.some((s) => s.taskId === i.id), JSON.stringify(i));
    }
    for (const s of accepted) {
      assert.ok(
        ledgerSucceeded.some((i) => i.id === s.taskId),
        `ledger row of ${s.taskId} is succeeded`,
      );
    }
    assert.ok(ledgerFailed.length >= rejected.length, 'every rejected submission has a failed ledger row');
    for (const i of ledgerFailed) assert.equal(i.error_code, 'queue_unavailable', JSON.stringify(i));

    // A rejected submission never runs. Its publish may still have reached the server (the PubAck
    // was lost in the outage): such a message is in the stream, and the worker recorded it
    // cancelled without starting it (the gateway set its cancel flag when it answered 503).
    const landedLate: string[] = [];
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      for (const row of ledgerFailed) {
        const inStream = await jsm.streams
          .getMessage(ns.stream, { last_by_subj: `${ns.subjectPrefix}.echo_q.${row.id}` })
          .catch(() => null);
        if (!inStream) continue;
        const rec = await waitFor(
          async () => {
            const r = await clients.store.readRecord(row.id);
            return r && r.status !== 'pending' ? r : null;
          },
          30_000,
          `the worker to settle ${row.id}`,
          200,
        );
        assert.equal(rec.status, 'cancelled', JSON.stringify(rec));
        assert.equal(rec.started_at, null, `${row.id} never started`);
        landedLate.push(row.id);
      }
      const info = await (await jetstreamManager(nc)).streams.info(ns.stream);
      assert.equal(
        info.state.messages,
        ledgerSucceeded.length + landedLate.length,
        `stream holds ${info.state.messages} messages: ${ledgerSucceeded.length} succeeded tasks and ${landedLate.length} rejected ones that landed late`,
      );
    } finally {
      await nc.close();
    }

    // Same processes throughout: nobody was restarted.
    assert.deepEqual([gateway.proc.pid, ...workers.map((w) => w.proc.pid)], pids);
    for (const p of [gateway, ...workers]) assert.equal(p.proc.exitCode, null, 'still running');
    // Each worker's pull loop re-issued its pull after the restart: both completed tasks since.
    const completedSince = workers.map(
      (w) =>
        w.lines.filter((l) => l.msg === 'task completed' && Date.parse(String(l.time)) > restartedAt).length,
    );
    for (const [i, n] of completedSince.entries())
      assert.ok(n > 0, `worker ${i} completed tasks after the restart`);
    const figures = {
      submissions: submissions.length,
      accepted: accepted.length,
      acceptedBeforeKill: before,
      acceptedAfterRestart: afterRestart,
      rejectedWhileDown: rejected.length,
      rejectedButLandedLate: landedLate.length,
      completed: accepted.length,
      ledgerFailedQueueUnavailable: ledgerFailed.length,
      completedAfterRestartPerWorker: completedSince,
      outageMs: restartedAt - killedAt,
      firstSuccessAfterRestartMs: firstSuccessAfterRestart - restartedAt,
      firstAcceptAfterRestartMs:
        Math.min(...accepted.filter((s) => s.sentAt > restartedAt).map((s) => s.answeredAt)) - restartedAt,
    };
    process.stderr.write(`nats restart figures: ${JSON.stringify(figures)}\n`);
    const warnings = new Map<string, number>();
    for (const l of [...gateway.lines, ...workers.flatMap((w) => w.lines)]) {
      if (Number(l.level) >= 40) warnings.set(String(l.msg), (warnings.get(String(l.msg)) ?? 0) + 1);
    }
    process.stderr.write(`warnings logged: ${JSON.stringify(Object.fromEntries(warnings))}\n`);
  });

  it('never runs a task whose publish timed out, even when the message reached the stream later', async () => {
    // A frozen server (SIGSTOP) takes the publish into its socket buffer but sends no PubAck: the
    // gateway answers 503 after the publish timeout. Once the server resumes it stores the message,
    // so a worker receives a task the client was told was not accepted.
    nats.pause();
    let answer: Submission;
    try {
      answer = await post(-3);
    } finally {
      nats.resume();
    }
    assert.equal(answer.status, 503, JSON.stringify(answer));
    assert.equal(answer.code, 'queue_unavailable');
    const res = await fetch(`${gateway.url}/tasks?status=failed&limit=1`);
    const [row] = ((await res.json()) as { items: LedgerItem[] }).items;
    assert.equal(row?.error_code, 'queue_unavailable');
    const id = String(row?.id);

    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const stored = await waitFor(
        () =>
          jsm.streams
            .getMessage(ns.stream, { last_by_subj: `${ns.subjectPrefix}.echo_q.${id}` })
            .catch(() => null),
        20_000,
        'the late publish to land in the stream',
        200,
      );
      assert.ok(stored, 'the message did reach the stream after the 503');
    } finally {
      await nc.close();
    }
    // The worker receives it, finds the cancel flag the gateway left, and records it cancelled
    // without running it: no `started` event, no echo result.
    // Read from Redis: until the worker writes, the gateway serves the ledger's failed row.
    const rec = await waitFor(
      async () => {
        const r = await clients.store.readRecord(id);
        return r && r.status !== 'pending' ? r : null;
      },
      30_000,
      'the worker to settle the late message',
      200,
    );
    assert.equal(rec.status, 'cancelled', JSON.stringify(rec));
    assert.equal(rec.started_at, null, 'it never started');
    const events = await clients.redis.xrange(ns.names.progressKey(id), '-', '+');
    assert.deepEqual(
      events.map(([, f]) => f[1]),
      ['error'],
      'only the cancelled event, no started',
    );
    // The ledger keeps what the client was told.
    const after = (await (await fetch(`${gateway.url}/tasks?status=failed&limit=100`)).json()) as {
      items: LedgerItem[];
    };
    assert.equal(after.items.find((i) => i.id === id)?.error_code, 'queue_unavailable');
  });
});
