// Graceful drain on SIGTERM, on real worker processes: the worker stops pulling at once, lets the
// tasks in flight finish within TASKS_SHUTDOWN_GRACE_S, hands back (nak) those that do not, and
// exits 0; another replica picks the handed-back tasks up at once (AckWait is 60 s here, so a
// prompt redelivery can only be the nak's). Every task ends succeeded exactly once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { TaskEvent } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import {
  consumerInfo,
  isTerminalEvent,
  progressEventsOfMany,
  startedData,
  submitTask,
  workerIdOf,
} from './support/reliability-helpers.ts';

const ACK_WAIT_S = 60;
const CONCURRENCY = 4;

describe('graceful drain of a worker on SIGTERM', () => {
  const ns = testNamespace('rel_drain');
  const env = (graceS: number) =>
    workerEnv(ns, {
      TASKS_QUEUES: 'echo_q',
      TASKS_ECHO__CONCURRENCY: String(CONCURRENCY),
      TASKS_NATS__ACK_WAIT_S: String(ACK_WAIT_S),
      TASKS_SHUTDOWN_GRACE_S: String(graceS),
    });
  let clients: TestClients;
  let jsm: JetStreamManager;
  let gateway: ServiceProcess & { url: string };
  const workers: ServiceProcess[] = [];
  const spawnWorker = async (graceS: number) => {
    const w = await startWorker(env(graceS));
    workers.push(w);
    return w;
  };

  before(async () => {
    clients = await testClients(ns);
    jsm = await jetstreamManager(clients.nc);
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  });
  after(async () => {
    await gateway?.stop();
    for (const w of workers) await w.stop();
    await clients?.close();
  });

  const submitEchos = (n: number, delayMs: number, tag: string) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        submitTask(gateway.url, 'echo', { payload: { tag, i }, delay_ms: delayMs }),
      ),
    );
  const streamsOf = (ids: string[]) => progressEventsOfMany(clients, ns, ids);
  const startedOn = (streams: Map<string, TaskEvent[]>, workerId: string) =>
    [...streams.entries()].flatMap(([id, events]) =>
      events
        .filter((e) => e.type === 'started' && startedData(e).worker === workerId)
        .map((e) => ({ id, e })),
    );
  const waitStartedOn = (ids: string[], w: ServiceProcess, n: number) =>
    waitFor(
      async () => {
        const s = startedOn(await streamsOf(ids), workerIdOf(w));
        return s.length >= n ? s : null;
      },
      30_000,
      `${n} tasks to start on worker ${w.proc.pid}`,
    );
  /** Every task: exactly one terminal event, `done`, and a succeeded result of its last delivery. */
  async function assertSucceededOnce(ids: string[]) {
    const streams = await streamsOf(ids);
    for (const id of ids) {
      const events = streams.get(id) ?? [];
      const terminal = events.filter(isTerminalEvent);
      assert.deepEqual(
        terminal.map((e) => e.type),
        ['done'],
        `task ${id}: ${events.map((e) => e.type).join(',')}`,
      );
      const outcome = await clients.store.readOutcome(id);
      assert.equal(outcome?.status, 'succeeded');
      const lastStart = events.filter((e) => e.type === 'started').at(-1);
      assert.equal(outcome.attempts, lastStart ? startedData(lastStart).attempt : -1);
    }
    return streams;
  }

  it('stops pulling at once and finishes the tasks in flight within the grace period', async () => {
    const a = await spawnWorker(10);
    // Three times the worker's slots: the rest wait in the stream while it drains.
    const ids = await submitEchos(CONCURRENCY * 3, 1500, 'fit');
    const inFlight = await waitStartedOn(ids, a, CONCURRENCY);
    const signalledAt = Date.now();
    a.proc.kill('SIGTERM');
    assert.equal(await a.exited, 0, 'a graceful stop exits 0');
    const exitedAt = Date.now();

    let streams = await streamsOf(ids);
    const onA = startedOn(streams, workerIdOf(a));
    assert.deepEqual(
      onA.map((s) => s.id).sort(),
      inFlight.map((s) => s.id).sort(),
      'it started no task after the signal',
    );
    for (const { id, e } of onA) {
      assert.ok(Date.parse(e.ts) <= signalledAt, `task ${id} started after SIGTERM`);
      const events = streams.get(id) ?? [];
      assert.deepEqual(
        events.map((x) => x.type),
        ['started', 'done'],
        `task ${id} ran once, to the end, on the draining worker`,
      );
    }
    assert.ok(exitedAt - signalledAt < 10_000, 'it did not wait for the whole grace period');
    assert.ok(!a.lines.some((l) => l.msg === 'grace period over: handing in-flight tasks back'));
    assert.ok(a.lines.some((l) => l.msg === 'worker stopped'));
    // What it acked is done; what it never took is still in the stream, never delivered.
    const info = await consumerInfo(jsm, ns, 'echo_q');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, ids.length - CONCURRENCY);
    assert.equal(info.num_redelivered, 0);

    // A new replica runs the rest, each on its first delivery.
    const b = await spawnWorker(10);
    await waitFor(() => allDone(ids), 30_000, 'the remaining tasks to finish on the new replica');
    streams = await assertSucceededOnce(ids);
    for (const id of ids) {
      const starts = (streams.get(id) ?? []).filter((e) => e.type === 'started').map(startedData);
      assert.equal(starts.length, 1, `task ${id} ran once`);
      assert.equal(starts[0]?.attempt, 1);
      assert.ok([workerIdOf(a), workerIdOf(b)].includes(starts[0]?.worker ?? ''));
    }
  });

  it('hands tasks longer than the grace period back, and another replica runs them at once', async () => {
    const graceS = 1;
    // Only `a` runs while the tasks are handed out; the replica that takes over starts afterwards.
    for (const w of workers) assert.equal(await w.stop(), 0);
    const a = await spawnWorker(graceS);
    const taskMs = 6000;
    const ids = await submitEchos(CONCURRENCY, taskMs, 'long');
    const onA = await waitStartedOn(ids, a, CONCURRENCY);
    // The other replica is idle: everything is in flight on `a`.
    const b = await spawnWorker(10);
    const signalledAt = Date.now();
    a.proc.kill('SIGTERM');
    assert.equal(await a.exited, 0, 'exit code 0 after handing the tasks back');
    const exitedAt = Date.now();
    assert.ok(exitedAt - signalledAt < graceS * 1000 + 8000, 'it stopped soon after the grace period');
    const handedBack = a.lines.find((l) => l.msg === 'grace period over: handing in-flight tasks back');
    assert.equal(handedBack?.inFlight, CONCURRENCY);
    assert.equal(a.lines.filter((l) => l.msg === 'task handed back during shutdown').length, CONCURRENCY);

    const bStarts = await waitStartedOn(ids, b, CONCURRENCY);
    for (const { id, e } of bStarts) {
      assert.equal(startedData(e).attempt, 2, `task ${id} redelivered once`);
      const delay = Date.parse(e.ts) - signalledAt;
      assert.ok(
        delay >= graceS * 1000 - 50,
        `task ${id} restarted ${delay} ms after SIGTERM, inside the grace`,
      );
      // Well before AckWait: the message came back through the nak, not through an expiry.
      assert.ok(delay < 15_000, `task ${id} restarted only ${delay} ms after SIGTERM`);
      // Handed back at the end of the grace period, not when the task would have ended on `a`.
      const firstStart = Date.parse(onA.find((s) => s.id === id)?.e.ts ?? '');
      assert.ok(
        Date.parse(e.ts) < firstStart + taskMs,
        `task ${id} was held by \`a\` until it would have ended`,
      );
    }
    await waitFor(() => allDone(ids), 30_000, 'the handed-back tasks to finish on the other replica');
    const streams = await assertSucceededOnce(ids);
    for (const id of ids) {
      const starts = (streams.get(id) ?? []).filter((e) => e.type === 'started').map(startedData);
      assert.deepEqual(
        starts.map((s) => [s.worker, s.attempt]),
        [
          [workerIdOf(a), 1],
          [workerIdOf(b), 2],
        ],
      );
    }
    const info = await consumerInfo(jsm, ns, 'echo_q');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 0);
  });

  async function allDone(ids: string[]): Promise<boolean> {
    const pipe = clients.redis.pipeline();
    for (const id of ids) pipe.exists(ns.names.resultKey(id));
    const res = (await pipe.exec()) ?? [];
    return res.every(([err, v]) => !err && v === 1);
  }
});
