// Redis Cluster: three primaries and three replicas on loopback, tasks:events in three shards.
// The echo task's whole end-to-end suite (test/echo.e2e.test.ts: waits, idempotency, rate limits,
// cancels) runs against it unchanged; SSE and the ledger work with one consumer group per shard;
// and a primary SIGKILLed under load loses no task the gateway accepted, with the workers
// confirming each result on a replica (TASKS_REDIS__WAIT_REPLICAS=1) before they ack it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNames, decodeTaskEventsEntry } from '@neuroagent/contracts';
import { connectRedis, createLogger, createTaskWriter, newTaskId, type Redis } from '@neuroagent/platform';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { ROOT, type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import { FAILOVER_WORKER_ENV, runPacedLoad, verifyNothingLost } from './support/redis-failover.ts';
import { ask, type RedisClusterSet, startRedisCluster } from './support/redis-topologies.ts';

const SHARDS = 3;

/** This process's env without node:test's marker, which would make the child skip its files. */
function childEnv(): Record<string, string | undefined> {
  const { NODE_TEST_CONTEXT: _marker, ...env } = process.env;
  return env;
}

describe('Redis Cluster (3 primaries, 3 replicas, tasks:events in 3 shards)', () => {
  let cluster: RedisClusterSet;

  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.close();
  });

  /** Calls of one command across the primaries: proof that a suite's writes reached the cluster. */
  const callsOf = async (command: string) => {
    let total = 0;
    for (const { node } of await cluster.primaries()) {
      const stats = String(await ask(node.port, 'INFO', 'commandstats'));
      total += Number(stats.match(new RegExp(`cmdstat_${command}:calls=(\\d+)`))?.[1] ?? 0);
    }
    return total;
  };

  it('passes the echo end-to-end suite unchanged', async (t) => {
    const xaddsBefore = await callsOf('xadd');
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', 'test/echo.e2e.test.ts'], {
      cwd: ROOT,
      env: {
        ...childEnv(),
        TEST_REDIS_CLUSTER_NODES: cluster.nodeList,
        TEST_REDIS_EVENTS_SHARDS: String(SHARDS),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const count = (what: string) => Number(out.match(new RegExp(`ℹ ${what} (\\d+)`))?.[1] ?? -1);
    t.diagnostic(`echo suite on the cluster: pass ${count('pass')}, fail ${count('fail')}`);
    assert.equal(code, 0, out.slice(-4000));
    assert.ok(count('pass') >= 5, `the suite ran its tests: ${out.slice(-2000)}`);
    assert.equal(count('fail'), 0);
    // Each finished echo appends a progress and a tasks:events entry: they went to the cluster.
    assert.ok((await callsOf('xadd')) - xaddsBefore >= 12, 'the suite wrote its task state to the cluster');
  });

  describe('under load, losing a primary', () => {
    const ns = testNamespace('rcluster');
    let clients: TestClients; // NATS clean-up of the namespace
    let redis: Redis;
    let worker: ServiceProcess;
    let gateway: ServiceProcess & { url: string };
    const topology = (prefix: string) => ({
      [`${prefix}_REDIS__CLUSTER_NODES`]: cluster.nodeList,
      [`${prefix}_REDIS__EVENTS_SHARDS`]: String(SHARDS),
    });

    before(async () => {
      clients = await testClients(ns);
      redis = connectRedis(
        {
          url: 'redis://127.0.0.1:6379/0',
          sentinels: '',
          sentinel_name: 'mymaster',
          cluster_nodes: cluster.nodeList,
        },
        'cluster-test',
        createLogger('t', 'silent'),
      );
      worker = await startWorker(
        workerEnv(ns, {
          ...topology('TASKS'),
          ...FAILOVER_WORKER_ENV,
        }),
      );
      gateway = await startGateway({
        PATH: process.env.PATH ?? '',
        ...gatewayEnv(ns, topology('NEUROAGENT')),
      });
    });
    after(async () => {
      await gateway?.stop();
      await worker?.stop();
      redis?.disconnect();
      await clients?.close();
    });

    it('streams progress over SSE and runs a ledger consumer group on every shard', async () => {
      const res = await fetch(`${gateway.url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task: 'echo', input: { payload: 'sse', delay_ms: 300 } }),
      });
      assert.equal(res.status, 202);
      const { task_id: id } = (await res.json()) as { task_id: string };
      const text = await (await fetch(`${gateway.url}/tasks/${id}/events`)).text();
      assert.deepEqual(
        [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]),
        ['started', 'done'],
      );
      const shardKeys = createNames({ ...ns, eventsShards: SHARDS }).eventsKeys();
      assert.equal(shardKeys.length, SHARDS);
      for (const key of shardKeys) {
        const groups = (await redis.xinfo('GROUPS', key)) as unknown[][];
        assert.ok(
          groups.some((g) => g[g.indexOf('name') + 1] === 'ledger'),
          `${key} has the ledger group`,
        );
      }
    });

    it('appends a task’s events outside its MULTI, and again from the result on a redelivery', async () => {
      const shardNames = createNames({ ...ns, eventsShards: SHARDS });
      const writer = createTaskWriter(redis, {
        names: shardNames,
        ttlS: 600,
        progressMaxLen: 100,
        eventsMaxLen: 1000,
      });
      const meta = { owner: 'o', queue: 'echo_q', task: 'echo', submittedAt: new Date().toISOString() };
      const id = newTaskId();
      const terminals = async () =>
        (await redis.xrange(shardNames.eventsKeyOf(id), '-', '+'))
          .map(([entryId, fields]) => decodeTaskEventsEntry(entryId, fields))
          .filter((e) => e?.taskId === id && e.status === 'succeeded').length;
      assert.equal(await writer.begin(id, meta, 1, 'w', true), 'started');
      await writer.writeOutcome(id, meta, {
        status: 'succeeded',
        result: 1,
        finished_at: new Date().toISOString(),
        attempts: 1,
      });
      assert.equal(await terminals(), 1);
      // A worker that died between the MULTI and the XADD would leave no terminal event: the
      // redelivery finds the result and appends it, so the ledger and the waiters still see the end.
      assert.equal(await writer.begin(id, meta, 2, 'w', true), 'duplicate');
      assert.equal(await terminals(), 2);
    });

    it('loses no accepted task when a primary is SIGKILLed, and nobody restarts', async (t) => {
      const pids = [gateway.proc.pid, worker.proc.pid];
      let killedAt = 0;
      let healedAt = 0;
      let rejoinedAt = 0;
      const submissions = await runPacedLoad({
        gatewayUrl: gateway.url,
        submitters: 4,
        paceMs: 20,
        loadMs: 14_000,
        delayMs: 100,
        chaos: async () => {
          await sleep(4000);
          const victim = (await cluster.primaries())[0];
          assert.ok(victim, 'a primary to kill');
          killedAt = Date.now();
          await victim.node.stop('SIGKILL');
          await waitFor(async () => ((await cluster.healthy()) ? true : null), 30_000, 'the failover', 100);
          healedAt = Date.now();
          // As an operator (or Kubernetes) would: the dead node comes back, as the new primary's
          // replica. Until then WAIT 1 cannot succeed for its slots, and their results are retried.
          await victim.node.start();
          await waitFor(
            async () => ((await cluster.replicaCount(victim.node)) === 1 ? true : null),
            30_000,
            'the restarted node to replicate',
            200,
          );
          rejoinedAt = Date.now();
        },
      });
      const verdict = await verifyNothingLost(gateway.url, submissions).catch((err: unknown) => {
        const tail = (p: ServiceProcess) =>
          p.lines
            .slice(-40)
            .map((l) => JSON.stringify(l))
            .join('\n');
        throw new Error(`${String(err)}\nworker:\n${tail(worker)}\ngateway:\n${tail(gateway)}`);
      });
      const refusalEnd = Math.max(0, ...verdict.refused.map((s) => s.answeredAt - killedAt));
      t.diagnostic(
        `${verdict.summary}; slots served again ${healedAt - killedAt} ms after the kill, replicated again at ${rejoinedAt - killedAt} ms; last refusal at ${refusalEnd} ms`,
      );
      assert.ok(verdict.accepted.length > 200, verdict.summary);
      assert.ok(
        verdict.refused.every((s) => s.answeredAt >= killedAt),
        'refusals only after the primary was lost',
      );
      assert.deepEqual([gateway.proc.pid, worker.proc.pid], pids);
      for (const p of [gateway, worker]) assert.equal(p.proc.exitCode, null);
    });
  });
});
