// `npm run bench`: its pure parts (/proc parsing, CPU per task, ratios and goals, the table,
// Server-Timing and CLIENT LIST parsing, the stages' critical path) and one quick smoke run of the
// whole bench against its own private servers and the real gateway and worker processes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  cpuPerTask,
  parseProcStat,
  parseVmRssKb,
  processCpuMs,
  processRssKb,
  ticksToMs,
} from '../bench/process-cpu.ts';
import { parseServerTiming } from '../bench/product-path.ts';
import { evaluate, formatTable, meets, ratio } from '../bench/report.ts';
import { criticalPath, stageSummaries } from '../bench/stage-breakdown.ts';
import { gatewayConnections, parseClientList } from '../bench/waiters.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('process-cpu', () => {
  it('reads utime and stime after the last ")" of the command name', () => {
    // comm may hold spaces and parentheses; fields 14 and 15 are utime and stime.
    const line = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 123 1000 50';
    assert.deepEqual(parseProcStat(line), { utime: 250, stime: 75 });
    assert.equal(ticksToMs({ utime: 250, stime: 75 }, 100), 3250);
    assert.throws(() => parseProcStat('garbage'), /no "\)"/);
  });

  it('reads VmRSS in kB', () => {
    assert.equal(parseVmRssKb('Name:\tnode\nVmPeak:\t 9 kB\nVmRSS:\t   51234 kB\nThreads: 7\n'), 51234);
    assert.throws(() => parseVmRssKb('Name:\tx\n'), /VmRSS/);
  });

  it('sees this process spend CPU time and hold memory', () => {
    const before = processCpuMs(process.pid);
    // Burn CPU until /proc shows 50 ms more (a busy machine may deschedule us: wall time is no measure).
    const deadline = performance.now() + 10_000;
    let used = 0;
    while (used < 50 && performance.now() < deadline) used = processCpuMs(process.pid) - before;
    assert.ok(used >= 50, `expected /proc to show ≥ 50 ms more CPU, it shows ${used}`);
    assert.ok(processRssKb(process.pid) > 10_000);
  });

  it('divides each process CPU delta, and their sum, by the task count', () => {
    const per = cpuPerTask({ gateway: 100, redis: 10 }, { gateway: 300, redis: 60 }, 100);
    assert.deepEqual(per, { gateway: 2, redis: 0.5, total: 2.5 });
  });
});

describe('report', () => {
  it('computes ratios, null when the raw figure is missing or zero', () => {
    assert.equal(ratio(3, 2), 1.5);
    assert.equal(ratio(1, 0), null);
    assert.equal(ratio(Number.NaN, 1), null);
  });

  it('checks max and min goals on the ratio or on the product figure', () => {
    assert.equal(meets({ kind: 'max', limit: 1.3, on: 'ratio' }, 1.3), true);
    assert.equal(meets({ kind: 'max', limit: 1.3, on: 'ratio' }, 1.31), false);
    assert.equal(meets({ kind: 'min', limit: 0.8, on: 'ratio' }, 0.79), false);
    assert.equal(meets({ kind: 'min', limit: 0.8, on: 'ratio' }, null), null);

    const p50 = evaluate({
      metric: 'p50',
      product: 2.6,
      raw: 2,
      unit: 'ms',
      goal: { kind: 'max', limit: 1.3, on: 'ratio' },
    });
    assert.equal(p50.ratio, 1.3);
    assert.equal(p50.met, true);
    const p99 = evaluate({
      metric: 'p99',
      product: 6,
      raw: 1,
      unit: 'ms',
      goal: { kind: 'max', limit: 5, on: 'value' },
    });
    assert.equal(p99.ratio, 6);
    assert.equal(p99.met, false, 'a value goal looks at the product figure, not the ratio');
    assert.equal(p99.goalText, '≤ 5 ms');
    const thr = evaluate({
      metric: 'thr',
      product: 900,
      raw: 1000,
      unit: '/s',
      goal: { kind: 'min', limit: 0.8, on: 'ratio' },
    });
    assert.equal(thr.met, true);
    assert.equal(thr.goalText, '≥ 0.8× raw');
    assert.equal(
      evaluate({ metric: 'x', product: 1, raw: null, goal: { kind: 'max', limit: 1, on: 'ratio' } }).met,
      null,
    );
  });

  it('formats an aligned table with the verdicts', () => {
    const text = formatTable([
      evaluate({
        metric: 'no-op p50',
        product: 2.5,
        raw: 1,
        unit: 'ms',
        goal: { kind: 'max', limit: 1.3, on: 'ratio' },
      }),
      evaluate({ metric: 'connections', product: 4, unit: '', goal: { kind: 'max', limit: 4, on: 'value' } }),
      evaluate({ metric: 'stage', product: 'unavailable', raw: null }),
    ]);
    const lines = text.split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[0] ?? '', /^metric\s+product\s+raw\s+ratio\s+goal\s+met\?$/);
    assert.match(lines[2] ?? '', /^no-op p50\s+2\.50 ms\s+1 ms\s+2\.50×\s+≤ 1\.3× raw\s+NO$/);
    assert.match(lines[3] ?? '', /^connections\s+4\s+–\s+≤ 4\s+yes$/);
    assert.match(lines[4] ?? '', /^stage\s+unavailable\s+–$/);
    // Every row's "product" column ends at the same place (right-aligned).
    const end = (lines[0] ?? '').indexOf('product') + 'product'.length;
    const width = Math.max(...lines.map((l) => l.length));
    assert.ok(width > end);
  });

  it('adds BullMQ columns when a row has a BullMQ figure, with goals on product/BullMQ', () => {
    const thr = evaluate({
      metric: 'thr',
      product: 900,
      bullmq: 1000,
      unit: '/s',
      goal: { kind: 'min', limit: 1, on: 'bullmq' },
    });
    assert.equal(thr.vsBullmq, 0.9);
    assert.equal(thr.ratio, null);
    assert.equal(thr.met, false);
    assert.equal(thr.goalText, '≥ 1× BullMQ');
    const p50 = evaluate({
      metric: 'p50',
      product: 2,
      raw: 1,
      bullmq: 1,
      unit: 'ms',
      goal: { kind: 'max', limit: 2, on: 'bullmq' },
    });
    assert.equal(p50.met, true);
    const lines = formatTable([p50, thr]).split('\n');
    assert.match(lines[0] ?? '', /^metric\s+product\s+raw\s+ratio\s+BullMQ\s+÷ BullMQ\s+goal\s+met\?$/);
    assert.match(lines[2] ?? '', /^p50\s+2 ms\s+1 ms\s+2\.00×\s+1 ms\s+2\.00×\s+≤ 2× BullMQ\s+yes$/);
    assert.match(lines[3] ?? '', /^thr\s+900 \/s\s+–\s+1000 \/s\s+0\.90×\s+≥ 1× BullMQ\s+NO$/);
  });
});

describe('Server-Timing and the stage breakdown', () => {
  it('parses every entry with a dur, whatever its name', () => {
    assert.deepEqual(parseServerTiming('auth;dur=0.25, ratelimit;dur=0.1,publish;desc="x";dur=0.4, cache'), {
      auth: 0.25,
      ratelimit: 0.1,
      publish: 0.4,
    });
    assert.deepEqual(parseServerTiming(undefined), {});
  });

  it('counts meta and ledger, which run side by side, as the longer of the two', () => {
    assert.equal(criticalPath({ auth: 1, meta: 2, ledger: 3, publish: 1 }), 5);
    assert.equal(criticalPath({ auth: 1, meta: 2 }), 3);
    const s = stageSummaries([
      { ms: 10, stages: { meta: 2, ledger: 3, wait: 4 } },
      { ms: 12, stages: { meta: 1, ledger: 1, wait: 6 } },
    ]);
    assert.equal(s.available, true);
    assert.deepEqual(Object.keys(s.stages).sort(), ['ledger', 'meta', 'wait']);
    assert.equal(s.outside?.max, 5);
    assert.equal(stageSummaries([{ ms: 1, stages: {} }]).available, false);
  });
});

describe('Redis CLIENT LIST', () => {
  it('counts the gateway connections by name and the blocked ones', () => {
    const list = [
      'id=3 addr=127.0.0.1:1 laddr=127.0.0.1:6379 fd=8 name=gateway age=1 idle=0 flags=N db=0 cmd=evalsha',
      'id=4 addr=127.0.0.1:2 laddr=127.0.0.1:6379 fd=9 name=gateway-longpoll age=1 idle=0 flags=b db=0 cmd=xread',
      'id=5 addr=127.0.0.1:3 laddr=127.0.0.1:6379 fd=10 name=gateway-ledger age=1 idle=0 flags=b db=0 cmd=xreadgroup',
      'id=6 addr=127.0.0.1:4 laddr=127.0.0.1:6379 fd=11 name=worker age=1 idle=0 flags=N db=0 cmd=multi',
      'id=7 addr=127.0.0.1:5 laddr=127.0.0.1:6379 fd=12 name=bench-admin age=1 idle=0 flags=N db=0 cmd=client|list',
      '',
    ].join('\n');
    const clients = parseClientList(list);
    assert.equal(clients.length, 5);
    assert.deepEqual(gatewayConnections(clients), {
      total: 3,
      blocking: 2,
      byName: { gateway: 1, 'gateway-longpoll': 1, 'gateway-ledger': 1 },
    });
  });
});

describe('npm run bench -- --quick', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs every section against its own servers and writes JSON with positive figures', {
    timeout: 240_000,
  }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-test-'));
    const json = join(dir, 'bench.json');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['scripts/bench/bench.ts', '--quick', '--json', json],
      { cwd: ROOT, timeout: 380_000, maxBuffer: 10 * 1024 * 1024 },
    );
    assert.match(stdout, /^metric\s+product\s+raw\s+ratio\s+BullMQ\s+÷ BullMQ\s+goal\s+met\?$/m);
    assert.match(stdout, /no-op p50, sequential/);
    const r = JSON.parse(await readFile(json, 'utf8'));
    const positive = (v: unknown, what: string) =>
      assert.ok(typeof v === 'number' && v > 0, `${what} should be a number > 0, got ${JSON.stringify(v)}`);

    positive(r.machine.cpus, 'machine.cpus');
    assert.match(r.command, /--quick/);
    for (const k of ['total', 'publish', 'wait', 'get'] as const) {
      for (const p of ['p50', 'p95', 'p99'] as const)
        positive(r.raw.roundTrip[k][p], `raw.roundTrip.${k}.${p}`);
    }
    positive(r.raw.barePublish.p50, 'raw.barePublish.p50');
    positive(r.raw.xaddWake.p50, 'raw.xaddWake.p50');
    positive(r.raw.throughput.perSecondUsed, 'raw throughput');
    positive(r.raw.cpuMsPerTask.server.total, 'raw server CPU per task');
    positive(r.raw.cpuMsPerTask.client, 'raw client CPU per task');

    for (const p of ['p50', 'p95', 'p99'] as const) positive(r.product.echo.sequential[p], `echo ${p}`);
    positive(r.product.throughput.perSecond, 'product throughput');
    positive(r.product.cpuMsPerTask.server.gateway, 'gateway CPU per task');
    positive(r.product.cpuMsPerTask.server.total, 'product server CPU per task');
    positive(r.product.cpuMsPerTask.client, 'product client CPU per task');
    // BullMQ, side by side: its own figures, and the same rows of the table carry them.
    for (const p of ['p50', 'p95', 'p99'] as const) positive(r.bullmq.sequential[p], `BullMQ ${p}`);
    assert.equal(r.bullmq.sequential.n, r.config.n, 'BullMQ sequential samples = product samples');
    assert.equal(r.bullmq.throughput.tasks, r.config.throughputTotal, 'BullMQ throughput tasks');
    assert.equal(r.bullmq.throughput.outstanding, r.config.outstanding, 'BullMQ outstanding');
    assert.equal(r.bullmq.workerConcurrency, 2);
    positive(r.bullmq.throughput.perSecond, 'BullMQ throughput');
    // /proc counts in 10 ms ticks: over the quick run's 60 tasks a server may show none, so only
    // that each was read; the client's CPU (process.cpuUsage, in µs) must be there.
    const read = (v: unknown, what: string) =>
      assert.ok(typeof v === 'number' && v >= 0, `${what} should be a number ≥ 0, got ${JSON.stringify(v)}`);
    read(r.bullmq.cpuMsPerTask.server.worker, 'BullMQ worker CPU per task');
    read(r.bullmq.cpuMsPerTask.server.redis, 'BullMQ redis-server CPU per task');
    read(r.bullmq.cpuMsPerTask.server.total, 'BullMQ server CPU per task');
    positive(r.bullmq.cpuMsPerTask.client, 'BullMQ client CPU per task');
    const row = (prefix: string) => {
      const found = r.table.find((t: { metric: string }) => t.metric.startsWith(prefix));
      assert.ok(found, `table row ${prefix}`);
      return found;
    };
    for (const prefix of ['no-op p50', 'no-op p95', 'no-op p99', 'no-op throughput']) {
      const t = row(prefix);
      positive(t.bullmq, `${prefix}: BullMQ figure`);
      positive(t.vsBullmq, `${prefix}: product/BullMQ`);
    }
    read(row('CPU/task, servers').bullmq, 'CPU/task, servers: BullMQ figure');
    positive(row('CPU/task, client').bullmq, 'CPU/task, client: BullMQ figure');
    const timing = r.product.echo.serverTiming;
    if (timing.available) {
      const p50s = Object.values(timing.stages as Record<string, { p50: number }>).map((s) => s.p50);
      assert.ok(p50s.length > 0 && p50s.some((v) => v > 0), 'stage p50s');
    }
    // A few seconds once the worker's Pyodide snapshot exists (.data/snapshots); its first build takes minutes.
    positive(r.python.sequential.p50, 'print(1+1) p50');
    positive(r.python.sequential.p99, 'print(1+1) p99');
    positive(r.python.throughput.perSecond, 'print(1+1) throughput');

    // 1 vs 2 processes of each service: both runs measured, the ratio taken from them.
    for (const service of ['gateways', 'cluster', 'python'] as const) {
      const pair = r.scaling[service];
      assert.ok(pair, `scaling.${service}`);
      assert.equal(pair.one.processes, 1);
      assert.equal(pair.two.processes, 2);
      positive(pair.one.perSecond, `scaling.${service}.one.perSecond`);
      positive(pair.two.perSecond, `scaling.${service}.two.perSecond`);
      positive(pair.two.coresBusy, `scaling.${service}.two.coresBusy`);
      assert.ok(
        Math.abs(pair.ratio - pair.two.perSecond / pair.one.perSecond) < 0.01,
        `scaling.${service}.ratio`,
      );
    }
    assert.match(stdout, /scaling: echo, 2 gateways ÷ 1/);
    assert.match(stdout, /scaling: echo, HTTP__WORKERS=2 ÷ 1 gateway/);

    const w = r.waiters;
    assert.equal(w.waiters, 50);
    positive(w.redisConnections.withWaiters.total, 'gateway Redis connections');
    positive(w.gatewayRssMb.before, 'gateway RSS before');
    positive(w.gatewayRssMb.withWaiters, 'gateway RSS with waiters');
    positive(w.wakeMs.p50, 'wake-up p50');
    assert.equal(w.wakeMs.n, 50);

    assert.equal(r.goals.length, 8);
    for (const g of r.goals) assert.equal(typeof g.met, 'boolean', `goal ${g.metric} evaluated`);
    // The goals, each evaluated: against BullMQ, p99, and the gateway's CPU per task.
    const goal = (prefix: string, text: string) => {
      const g = r.goals.find((x: { metric: string }) => x.metric.startsWith(prefix));
      assert.ok(g, `goal ${prefix}`);
      assert.equal(g.goal, text);
      positive(g.value, `goal ${prefix} value`);
    };
    goal('goal: no-op throughput vs BullMQ', '≥ 1× BullMQ');
    goal('goal: no-op p50 vs BullMQ', '≤ 2× BullMQ');
    goal('no-op p99', '≤ 5 ms');
    goal('  CPU/task gateway', '≤ 0.15 ms');
    assert.match(stdout, /goal: no-op throughput vs BullMQ/);
  });
});
