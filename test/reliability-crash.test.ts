// Delivery guarantee under worker crashes: 2,000 echo tasks go through the real gateway while two
// echo_q worker processes are killed with SIGKILL in turn every 2 s and restarted. Every task must
// end with exactly one result and one terminal event, and the only extra executions allowed are the
// tasks the killed process had in flight (JetStream redelivers them after AckWait).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { TaskEvent } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import {
  consumerInfo,
  countResults,
  isTerminalEvent,
  listAllTasks,
  progressEventsOfMany,
  sleep,
  startedData,
  submitTask,
  workerIdOf,
} from './support/reliability-helpers.ts';

const TASKS = 2000;
const DELAY_MS = 100;
// Submitted in waves over about SUBMIT_S seconds, so that every kill lands while tasks are running.
const SUBMIT_S = 16;
const KILL_EVERY_MS = 2000;
const ACK_WAIT_S = 3;

interface Kill {
  workerId: string;
  at: number;
  ackPendingBefore: number;
  ackPendingAfter: number;
}

describe('2,000 tasks while workers are SIGKILLed every 2 s', () => {
  const ns = testNamespace('rel_crash');
  const env = workerEnv(ns, {
    TASKS_QUEUES: 'echo_q',
    TASKS_NATS__ACK_WAIT_S: String(ACK_WAIT_S),
    // High enough that the kills never dead-letter a task.
    TASKS_NATS__MAX_DELIVER: '20',
  });
  let clients: TestClients;
  let jsm: JetStreamManager;
  let gateway: ServiceProcess & { url: string };
  // Every worker process started, ready or not, so that `after` stops them all.
  const spawned: Promise<ServiceProcess>[] = [];
  const spawn = () => {
    const w = startWorker(env);
    spawned.push(w);
    w.catch(() => {});
    return w;
  };

  before(async () => {
    clients = await testClients(ns);
    jsm = await jetstreamManager(clients.nc);
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  });
  after(async () => {
    await gateway?.stop();
    for (const w of spawned) await (await w.catch(() => null))?.stop('SIGKILL');
    await clients?.close();
  });

  it('gives every task exactly one result; extra executions ≤ tasks in flight at the kills', async () => {
    const t0 = Date.now();
    // Two replicas share the durable echo_q consumer.
    const replicas: Promise<ServiceProcess>[] = [spawn(), spawn()];
    for (const r of replicas) await r;

    const ids: string[] = [];
    let submitted = false;
    const submitting = (async () => {
      const perWave = Math.ceil(TASKS / (SUBMIT_S * 4));
      while (ids.length < TASKS) {
        const waveStart = Date.now();
        const n = Math.min(perWave, TASKS - ids.length);
        const base = ids.length;
        const got = await Promise.all(
          Array.from({ length: n }, (_, j) =>
            submitTask(gateway.url, 'echo', { payload: { i: base + j }, delay_ms: DELAY_MS }),
          ),
        );
        ids.push(...got);
        await sleep(Math.max(0, 250 - (Date.now() - waveStart)));
      }
      submitted = true;
    })();
    let submitError: unknown = null;
    submitting.catch((err: unknown) => {
      submitError = err;
    });

    const kills: Kill[] = [];
    for (let k = 0; ; k++) {
      await sleep(KILL_EVERY_MS);
      if (submitError) throw submitError;
      if (submitted && (await countResults(clients, ns, ids)) === TASKS) break;
      assert.ok(Date.now() - t0 < 100_000, 'the tasks did not all finish within 100 s');
      const slot = k % 2;
      // A replacement started at the previous kill of this slot must be up before it is killed.
      const victim = await replicas[slot]!;
      const before = (await consumerInfo(jsm, ns, 'echo_q')).num_ack_pending;
      victim.proc.kill('SIGKILL');
      const at = Date.now();
      assert.equal(await victim.exited, 'SIGKILL');
      // Read before AckWait can expire: what the dead process held is still pending.
      const afterKill = (await consumerInfo(jsm, ns, 'echo_q')).num_ack_pending;
      kills.push({ workerId: workerIdOf(victim), at, ackPendingBefore: before, ackPendingAfter: afterKill });
      replicas[slot] = spawn();
    }
    await submitting;
    for (const r of replicas) await r;
    assert.equal(ids.length, TASKS);
    assert.equal(new Set(ids).size, TASKS);
    assert.ok(kills.length >= 4, `only ${kills.length} kills happened`);

    // Messages the last killed process held come back after AckWait and are acked as duplicates.
    await waitFor(
      async () => {
        const info = await consumerInfo(jsm, ns, 'echo_q');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      60_000,
      'every message to be acked',
      200,
    );
    const durationMs = Date.now() - t0;

    const streams = await progressEventsOfMany(clients, ns, ids);
    const killedIds = new Set(kills.map((k) => k.workerId));
    let executions = 0;
    let abandoned = 0;
    for (const [i, id] of ids.entries()) {
      const events = streams.get(id) ?? [];
      const terminal = events.filter(isTerminalEvent);
      assert.equal(terminal.length, 1, `task ${id} has ${terminal.length} terminal events`);
      assert.equal(terminal[0]?.type, 'done', `task ${id} ended with ${terminal[0]?.type}`);
      assert.equal(events.at(-1), terminal[0], `task ${id}: nothing after its terminal event`);
      const started = events.filter((e) => e.type === 'started');
      assert.ok(started.length >= 1, `task ${id} never started`);
      executions += started.length;
      // An execution not followed by the terminal event was cut short: only a killed process may do that.
      for (const [j, e] of events.entries()) {
        if (e.type !== 'started' || isTerminalEvent(events[j + 1] as TaskEvent)) continue;
        abandoned++;
        const by = startedData(e).worker;
        assert.ok(killedIds.has(by), `task ${id} was abandoned by ${by}, which was never killed`);
        const kill = kills.find((k) => k.workerId === by)!;
        assert.ok(Date.parse(e.ts) <= kill.at + 50, `task ${id} started on ${by} after it was killed`);
      }
      const outcome = await clients.store.readOutcome(id);
      assert.equal(outcome?.status, 'succeeded', `task ${id}`);
      const last = startedData(started.at(-1)!);
      assert.equal(outcome.attempts, last.attempt, `task ${id}: the result is the last delivery's`);
      assert.deepEqual(outcome.result, { payload: { i }, attempt: last.attempt });
    }
    const extra = executions - TASKS;
    assert.equal(extra, abandoned, 'every extra execution is one a kill cut short');
    const inFlightAtKills = kills.reduce((s, k) => s + Math.max(k.ackPendingBefore, k.ackPendingAfter), 0);
    assert.ok(inFlightAtKills > 0, 'the kills hit workers with tasks in flight');
    assert.ok(extra <= inFlightAtKills, `extra ${extra} > in flight at the kills ${inFlightAtKills}`);

    // The same through the API: the result per task, and the ledger (fed by tasks:events).
    for (let i = 0; i < ids.length; i += 50) {
      const records = await Promise.all(
        ids.slice(i, i + 50).map(async (id) => {
          const res = await fetch(`${gateway.url}/tasks/${id}`);
          assert.equal(res.status, 200);
          return (await res.json()) as { id: string; status: string };
        }),
      );
      for (const r of records) assert.equal(r.status, 'succeeded', `GET /tasks/${r.id}`);
    }
    const ledger = await waitFor(
      async () => {
        const seen = new Map<string, string>();
        for (const item of await listAllTasks(gateway.url, 'queue=echo_q')) seen.set(item.id, item.status);
        return ids.every((id) => seen.get(id) === 'succeeded') ? seen : null;
      },
      60_000,
      'the ledger to record every task as succeeded',
      500,
    );
    assert.equal(ledger.size, TASKS);

    console.log(
      JSON.stringify({
        tasks: TASKS,
        kills: kills.length,
        executions,
        extra,
        inFlightAtKills,
        abandonedByKills: abandoned,
        ackPendingAtKills: kills.map((k) => [k.ackPendingBefore, k.ackPendingAfter]),
        durationMs,
      }),
    );
  });
});
