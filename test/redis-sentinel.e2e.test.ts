// Redis Sentinel: a primary, a replica and three sentinels on loopback. A gateway and an echo_q
// worker find the primary through the sentinels (…_REDIS__SENTINELS). The primary is SIGKILLed
// under load: both follow the promoted replica without a restart, tasks in flight finish or are
// redelivered, every task the gateway accepted ends once and is in the ledger. The worker confirms
// each result on a replica before it acks (TASKS_REDIS__WAIT_REPLICAS=1), so the failover cannot
// drop a result whose message was already acked.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import { FAILOVER_WORKER_ENV, runPacedLoad, verifyNothingLost } from './support/redis-failover.ts';
import { ask, connectedReplicas, type SentinelSet, startSentinelSet } from './support/redis-topologies.ts';

describe('Redis Sentinel (primary, replica, 3 sentinels) losing its primary under load', () => {
  const ns = testNamespace('rsentinel');
  let set: SentinelSet;
  let clients: TestClients; // NATS clean-up of the namespace
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };

  before(async () => {
    set = await startSentinelSet('neuroagent');
    clients = await testClients(ns);
    const topology = (prefix: string) => ({
      [`${prefix}_REDIS__SENTINELS`]: set.sentinelList,
      [`${prefix}_REDIS__SENTINEL_NAME`]: set.masterName,
      // Not the primary's address: with sentinels, the URL only gives the database.
      [`${prefix}_REDIS__URL`]: 'redis://sentinel-managed:1/0',
    });
    worker = await startWorker(
      workerEnv(ns, {
        ...topology('TASKS'),
        ...FAILOVER_WORKER_ENV,
      }),
    );
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, { ...topology('NEUROAGENT'), NEUROAGENT_LOG__LEVEL: 'info' }),
    });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
    await set?.close();
  });

  it('follows the promoted replica without a restart and loses no accepted task', async (t) => {
    const pids = [gateway.proc.pid, worker.proc.pid];
    const oldPrimary = set.primary;
    let killedAt = 0;
    let promotedAt = 0;
    let rejoinedAt = 0;
    const submissions = await runPacedLoad({
      gatewayUrl: gateway.url,
      submitters: 4,
      paceMs: 20,
      loadMs: 14_000,
      delayMs: 100,
      chaos: async () => {
        await sleep(4000);
        killedAt = Date.now();
        await oldPrimary.stop('SIGKILL');
        await waitFor(
          async () => ((await set.currentPrimaryPort()) === set.replica.port ? true : null),
          30_000,
          'the sentinels to promote the replica',
          100,
        );
        promotedAt = Date.now();
        // The old primary comes back empty; the sentinels make it the new primary's replica, and
        // WAIT 1 can succeed again (until then, results are retried rather than acked unconfirmed).
        await oldPrimary.start();
        await waitFor(
          async () =>
            connectedReplicas(String(await ask(set.replica.port, 'INFO', 'replication'))) === 1 ? true : null,
          // The sentinels reconfigure a returning instance on their next periodic check, then a
          // full sync follows: on a loaded 2-core machine that has taken over 30 s.
          60_000,
          'the old primary to replicate the new one',
          200,
        );
        rejoinedAt = Date.now();
      },
    });
    const verdict = await verifyNothingLost(gateway.url, submissions);
    const lastRefusal = Math.max(0, ...verdict.refused.map((s) => s.answeredAt - killedAt));
    t.diagnostic(
      `${verdict.summary}; replica promoted ${promotedAt - killedAt} ms after the kill, replicated again at ` +
        `${rejoinedAt - killedAt} ms; last refusal at ${lastRefusal} ms`,
    );
    assert.ok(verdict.accepted.length > 200, verdict.summary);
    assert.ok(
      verdict.refused.every((s) => s.answeredAt >= killedAt),
      'refusals only after the primary was lost',
    );
    const reconnected = (p: ServiceProcess) => p.lines.some((l) => l.msg === 'redis reconnected');
    assert.ok(reconnected(worker) && reconnected(gateway), 'both reconnected to the promoted replica');
    assert.deepEqual([gateway.proc.pid, worker.proc.pid], pids, 'nobody restarted');
    for (const p of [gateway, worker]) assert.equal(p.proc.exitCode, null);
  });
});
