// NEUROAGENT_HTTP__WORKERS: one command runs N gateway processes behind one port (node:cluster).
// The workers share the listening socket and serve requests between them; the primary replaces a
// worker that dies and, on SIGTERM, stops them all and exits 0. The default (1) stays one process.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TaskRecord } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { gatewaySuite } from './support/gateway-suite.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import {
  GATEWAY_MAIN,
  type LogLine,
  type ServiceProcess,
  startService,
  startWorker,
} from './support/processes.ts';

const listening = (lines: LogLine[]) => lines.filter((l) => l.msg === 'gateway listening');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('gateway with NEUROAGENT_HTTP__WORKERS=2', () => {
  const ns = testNamespace('gwcluster');
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess;
  let url = '';

  before(async () => {
    clients = await testClients(ns);
    worker = await startWorker(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
    gateway = startService(GATEWAY_MAIN, {
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_HTTP__PORT: '0',
        NEUROAGENT_HTTP__WORKERS: '2',
        NEUROAGENT_LOG__LEVEL: 'info',
      }),
    });
    await waitFor(async () => listening(gateway.lines).length >= 2, 30_000, 'two gateway workers listening');
    url = String(listening(gateway.lines)[0]?.url);
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  const echoBurst = async (count: number, tag: string): Promise<void> => {
    const responses = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        fetch(`${url}/tasks?wait=5`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ task: 'echo', input: { payload: { tag, i } } }),
        }),
      ),
    );
    const records = await Promise.all(
      responses.map(async (res) => {
        assert.equal(res.status, 200);
        return (await res.json()) as TaskRecord;
      }),
    );
    for (const [i, record] of records.entries()) {
      assert.equal(record.status, 'succeeded');
      assert.deepEqual(record.result, { payload: { tag, i }, attempt: 1 });
    }
  };

  const servingPids = (from: number) =>
    new Set(
      gateway.lines
        .slice(from)
        .filter((l) => l.msg === 'request' && l.route === '/tasks')
        .map((l) => l.pid),
    );

  it('runs two worker processes, not the primary, on one port', () => {
    const lines = listening(gateway.lines);
    const pids = new Set(lines.map((l) => l.pid));
    assert.equal(pids.size, 2, 'two distinct processes listen');
    assert.ok(!pids.has(gateway.proc.pid), 'the primary itself does not serve');
    assert.deepEqual(new Set(lines.map((l) => l.url)), new Set([url]), 'one shared port');
    assert.match(url, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/, 'the real port, not 0');
    assert.ok(gateway.lines.some((l) => l.msg === 'gateway cluster primary started' && l.workers === 2));
  });

  it('serves concurrent requests from both processes', async () => {
    const from = gateway.lines.length;
    await echoBurst(40, 'burst');
    const pids = servingPids(from);
    assert.equal(pids.size, 2, `requests served by both workers, saw ${[...pids].join(', ')}`);
  });

  it('replaces a worker killed with SIGKILL and keeps serving', async () => {
    const before = listening(gateway.lines).map((l) => Number(l.pid));
    const victim = before[0] as number;
    process.kill(victim, 'SIGKILL');
    await gateway.waitForLog(
      (l) => l.msg === 'gateway worker died: restarting' && l.workerPid === victim && l.signal === 'SIGKILL',
      10_000,
      'the primary noticing the dead worker',
    );
    const replacement = await gateway.waitForLog(
      (l) => l.msg === 'gateway listening' && !before.includes(Number(l.pid)),
      30_000,
      'a replacement worker listening',
    );
    assert.equal(replacement.url, url, 'the replacement listens on the same port');
    const from = gateway.lines.length;
    await echoBurst(40, 'after-kill');
    const pids = servingPids(from);
    assert.ok(!pids.has(victim), 'the killed worker serves nothing');
    assert.ok(pids.has(replacement.pid), 'the replacement serves requests');
  });

  it('stops every worker on SIGTERM and exits 0', async () => {
    const dead = gateway.lines
      .filter((l) => l.msg === 'gateway worker died: restarting')
      .map((l) => l.workerPid);
    const pids = listening(gateway.lines)
      .map((l) => Number(l.pid))
      .filter((pid) => !dead.includes(pid));
    assert.equal(pids.length, 2);
    assert.equal(await gateway.stop('SIGTERM'), 0);
    for (const pid of pids) {
      assert.ok(!alive(pid), `worker ${pid} is gone`);
      // Stopped the graceful way (their connections closed), not cut off by the primary's exit.
      assert.ok(
        gateway.lines.some((l) => l.msg === 'gateway stopped' && l.pid === pid),
        `${pid} stopped`,
      );
    }
    assert.ok(gateway.lines.some((l) => l.msg === 'gateway cluster stopped'));
    await assert.rejects(fetch(`${url}/healthz`), 'nothing listens any more');
  });
});

describe('gateway with the default NEUROAGENT_HTTP__WORKERS=1', () => {
  const suite = gatewaySuite(testNamespace('gwsingle'));

  it('serves from the process itself, with no cluster primary', async () => {
    const { gateway } = suite;
    assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
    const lines = listening(gateway.lines);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.pid, gateway.proc.pid);
    assert.ok(!gateway.lines.some((l) => l.msg === 'gateway cluster primary started'));
    assert.equal(await gateway.stop('SIGTERM'), 0);
  });
});

describe('gateway workers that cannot boot', () => {
  it('exit 78 once, without a restart storm', async () => {
    const ns = testNamespace('gwclusterbad');
    const gateway = startService(GATEWAY_MAIN, {
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_HTTP__PORT: '0',
        NEUROAGENT_HTTP__WORKERS: '2',
        NEUROAGENT_LOG__LEVEL: 'info',
        // Rejected by the runtime each worker builds, after the primary has forked them.
        NEUROAGENT_NATS__SIGNING_KEY: 'short',
      }),
    });
    const timer = setTimeout(() => gateway.proc.kill('SIGKILL'), 30_000);
    assert.equal(await gateway.exited, 78);
    clearTimeout(timer);
    assert.equal(gateway.lines.filter((l) => l.msg === 'gateway worker forked').length, 2);
    assert.ok(!gateway.lines.some((l) => l.msg === 'gateway worker died: restarting'));
    assert.ok(gateway.lines.some((l) => l.msg === 'gateway worker rejected its configuration: stopping'));
  });
});
