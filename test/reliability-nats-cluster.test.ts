// A 3-node NATS JetStream cluster on loopback, streams at R3, under a paced load from a gateway and
// two echo_q workers that know every node's URL. The stream leader is SIGKILLed, restarted later,
// then a non-leader is killed: every submission that got a 202 ends with exactly one final result,
// no process restarts, the gateway accepts submissions again within 5 s once a new leader is
// elected (a publish that finds no leader is retried within its budget, so most submissions made
// during the election wait instead of failing), and the streams' Raft groups are whole again once
// every node is back. Figures: docs/reliability.md.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { decodeTaskEventsEntry, isTerminal } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type PrivateNatsCluster, startPrivateNatsCluster } from './support/private-servers.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import type { Submission } from './support/reliability-helpers.ts';

const SUBMITTERS = 4;
const PACE_MS = 25;
const LOAD_MS = 24_000;
const KILL_LEADER_AT_MS = 5_000;
const RESTART_LEADER_AT_MS = 12_000;
const KILL_FOLLOWER_AT_MS = 17_000;
/** The gateway must take submissions again this soon after a new stream leader is elected. */
const AVAILABLE_WITHIN_MS = 5_000;

describe('NATS JetStream cluster (3 nodes, R3) losing its stream leader under load', () => {
  const ns = testNamespace('natscluster');
  let cluster: PrivateNatsCluster;
  let clients: TestClients;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let gateway: ServiceProcess & { url: string };
  const workers: ServiceProcess[] = [];

  before(async () => {
    cluster = await startPrivateNatsCluster(3);
    clients = await testClients(ns);
    nc = await connect({
      servers: cluster.urls.split(','),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    jsm = await jetstreamManager(nc);
    const wenv = workerEnv(ns, {
      TASKS_NATS__URL: cluster.urls,
      TASKS_NATS__STREAM_REPLICAS: '3',
      TASKS_QUEUES: 'echo_q',
      TASKS_NATS__ACK_WAIT_S: '5',
      TASKS_NATS__RETRY_BASE_MS: '200',
    });
    workers.push(await startWorker(wenv));
    workers.push(await startWorker(wenv));
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, { NEUROAGENT_NATS__URL: cluster.urls, NEUROAGENT_NATS__STREAM_REPLICAS: '3' }),
    });
  });

  after(async () => {
    await gateway?.stop();
    for (const w of workers) await w.stop();
    await nc?.close();
    await clients?.close();
    await cluster?.close();
  });

  const post = async (n: number): Promise<Submission> => {
    const sentAt = Date.now();
    const res = await fetch(`${gateway.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'echo', input: { payload: { n } } }),
    });
    const body = (await res.json()) as { task_id?: string; code?: string };
    const s: Submission = { n, sentAt, answeredAt: Date.now(), status: res.status };
    if (body.task_id !== undefined) s.taskId = body.task_id;
    if (body.code !== undefined) s.code = body.code;
    return s;
  };

  const streamLeader = async (stream: string) => (await jsm.streams.info(stream)).cluster?.leader ?? '';

  it('creates TASKS and TASKS_DLQ with three replicas', async () => {
    for (const stream of [ns.stream, `${ns.stream}_DLQ`]) {
      const info = await jsm.streams.info(stream);
      assert.equal(info.config.num_replicas, 3, stream);
      assert.equal(info.cluster?.replicas?.length, 2, `${stream} has a leader and two followers`);
    }
  });

  it('loses no accepted task, answers again within 5 s, and heals its Raft groups', async (t) => {
    const pids = [gateway.proc.pid, ...workers.map((w) => w.proc.pid)];
    const submissions: Submission[] = [];
    const start = Date.now();
    let counter = 0;
    const submitter = async () => {
      while (Date.now() - start < LOAD_MS) {
        submissions.push(await post(counter++));
        await sleep(PACE_MS);
      }
    };
    let leader = '';
    let follower = '';
    let killedLeaderAt = 0;
    let electedAt = 0;
    const chaos = (async () => {
      await sleep(KILL_LEADER_AT_MS);
      leader = await streamLeader(ns.stream);
      killedLeaderAt = Date.now();
      await cluster.node(leader).stop('SIGKILL');
      // The election, as seen from the survivors (a connection that never knew the dead node).
      const survivors = await connect({
        servers: cluster.nodes.filter((n) => n !== cluster.node(leader)).map((n) => n.url),
      });
      // No API check: while the meta leader is re-elected, even account info may time out.
      const survivorsJsm = await jetstreamManager(survivors, { timeout: 1000, checkAPI: false });
      await waitFor(
        async () => {
          const c = (await survivorsJsm.streams.info(ns.stream).catch(() => null))?.cluster;
          return c?.leader && c.leader !== leader ? c.leader : null;
        },
        30_000,
        'a new stream leader',
        50,
      );
      await survivors.close();
      electedAt = Date.now();
      await sleep(Math.max(0, killedLeaderAt + RESTART_LEADER_AT_MS - KILL_LEADER_AT_MS - Date.now()));
      await cluster.node(leader).start();
      await sleep(KILL_FOLLOWER_AT_MS - RESTART_LEADER_AT_MS);
      const now = await waitFor(
        async () => (await streamLeader(ns.stream)) || null,
        10_000,
        'a stream leader',
      );
      follower = cluster.nodes.map((_, i) => `n${i + 1}`).find((name) => name !== now) ?? '';
      await cluster.node(follower).stop('SIGKILL');
    })();
    await Promise.all([...Array.from({ length: SUBMITTERS }, submitter), chaos]);
    assert.ok(
      (leader !== '' && follower !== '' && leader !== follower) || follower !== '',
      'both kills happened',
    );

    const accepted = submissions.filter((s) => s.status === 202);
    const refused = submissions.filter((s) => s.status !== 202);
    for (const s of refused) {
      assert.equal(s.status, 503, `neither 202 nor 503: ${JSON.stringify(s)}`);
      assert.equal(s.code, 'queue_unavailable', JSON.stringify(s));
    }
    // Availability: how long the election took, how soon after it the gateway accepted again, and
    // how long it refused anything at all (all from the leader's kill).
    const afterKill = submissions.filter((s) => s.sentAt >= killedLeaderAt);
    const firstAccepted = afterKill
      .filter((s) => s.status === 202)
      .sort((a, b) => a.answeredAt - b.answeredAt)[0];
    const lastRefused = [...refused].sort((a, b) => b.answeredAt - a.answeredAt)[0];
    const firstAcceptedMs = firstAccepted
      ? firstAccepted.answeredAt - killedLeaderAt
      : Number.POSITIVE_INFINITY;
    const electionMs = electedAt - killedLeaderAt;
    const refusalWindowMs = lastRefused ? lastRefused.answeredAt - killedLeaderAt : 0;
    const slowest = Math.max(...afterKill.map((s) => s.answeredAt - s.sentAt));
    t.diagnostic(
      `submissions ${submissions.length}, accepted ${accepted.length}, refused ${refused.length}; ` +
        `new leader ${electionMs} ms after the kill; first 202 after the kill at ${firstAcceptedMs} ms; ` +
        `last refusal at ${refusalWindowMs} ms; slowest answer ${slowest} ms`,
    );
    assert.ok(electedAt > 0, 'a new leader was elected');
    assert.ok(
      firstAcceptedMs - electionMs <= AVAILABLE_WITHIN_MS,
      `accepting again ${firstAcceptedMs - electionMs} ms after the election`,
    );
    assert.ok(
      refused.every((s) => s.sentAt < electedAt + AVAILABLE_WITHIN_MS),
      `a submission sent more than 5 s after the election was refused: ${JSON.stringify(lastRefused)}`,
    );
    assert.ok(
      refused.every((s) => s.answeredAt >= killedLeaderAt),
      'refusals only after the leader was lost',
    );
    // Each submitter has one request in flight. A publish that finds no leader is retried until
    // its budget (NEUROAGENT_NATS__PUBLISH_TIMEOUT_MS) runs out, so only a request whose whole
    // budget passed inside the election is refused: one or two per submitter, not every request
    // of the election (about 600 in this run without the retry).
    assert.ok(refused.length <= 2 * SUBMITTERS, `${refused.length} submissions refused`);

    // Every accepted task ends succeeded, with its own payload, and exactly one final result.
    const records = await waitFor(
      async () => {
        const all = await Promise.all(accepted.map((s) => clients.store.readRecord(String(s.taskId))));
        return all.every((r) => r !== null && isTerminal(r.status)) ? all : null;
      },
      90_000,
      'every accepted task to end',
      500,
    );
    for (const [i, r] of records.entries()) {
      assert.equal(r?.status, 'succeeded', JSON.stringify(r));
      assert.deepEqual((r?.result as { payload?: unknown } | undefined)?.payload, { n: accepted[i]?.n });
    }
    const terminal = new Map<string, number>();
    for (const [id, fields] of await clients.redis.xrange(ns.names.eventsKeys()[0] as string, '-', '+')) {
      const entry = decodeTaskEventsEntry(id, fields);
      if (entry && isTerminal(entry.status))
        terminal.set(entry.taskId, (terminal.get(entry.taskId) ?? 0) + 1);
    }
    const notOnce = accepted.filter((s) => terminal.get(String(s.taskId)) !== 1);
    assert.deepEqual(
      notOnce.map((s) => `${s.taskId}: ${terminal.get(String(s.taskId)) ?? 0}`),
      [],
      'one final result per task',
    );

    // Nobody restarted: the same processes served the whole run.
    assert.deepEqual([gateway.proc.pid, ...workers.map((w) => w.proc.pid)], pids);
    for (const p of [gateway, ...workers]) assert.equal(p.proc.exitCode, null);

    // The killed follower comes back: both streams' Raft groups have a leader and two current replicas.
    await cluster.node(follower).start();
    for (const stream of [ns.stream, `${ns.stream}_DLQ`]) {
      await waitFor(
        async () => {
          const c = (await jsm.streams.info(stream).catch(() => null))?.cluster;
          const whole =
            c?.leader !== undefined &&
            c?.replicas?.length === 2 &&
            c.replicas.every((r) => r.current && !r.offline);
          return whole ? c : null;
        },
        30_000,
        `${stream}: a leader and two current replicas`,
        250,
      );
    }
  });
});
