// `npm run bench [-- --quick | --n 2000 --outstanding 100 --waiters 10000 --skip-python --json p]`:
// the product path next to the raw limit, measured in ONE run against the bench's own private
// nats-server and redis-server (so their CPU is attributable). Raw: a bare JetStream publish, and a
// raw worker process doing SET + XADD with the client woken by XREAD, then GET. Product: the echo
// no-op through POST /tasks?wait= on the real gateway (auth and rate limiting on) and worker
// processes. BullMQ (bullmq-path.ts): the same no-op through a BullMQ Queue + QueueEvents here and
// a Worker process, on a second private redis-server of its own. Then print(1+1) through POST
// /tools/run-python; scaling (scaling.ts): echo through 1 vs 2 gateways and print(1+1) on 1 vs 2
// python workers; then W concurrent long-poll waiters.
// Speed is only ever reported as ratios of figures from this run. Prints a table and writes JSON.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { signDevToken } from '../../services/gateway/src/auth/dev-token.ts';
import { createPostgresDatabase } from '../../services/gateway/test/postgres-db.ts';
import { testNamespace, workerEnv } from '../../services/platform/src/testing.ts';
import { startPrivateNats, startPrivateRedis } from '../../test/support/private-servers.ts';
import { type ServiceProcess, startGateway, startWorker } from '../../test/support/processes.ts';
import { BULLMQ_VERSION, startBullmqPath } from './bullmq-path.ts';
import { writeResult, writeResultTo } from './lib.ts';
import { cpuPerTask, cpuSnapshot } from './process-cpu.ts';
import { echoWorkerEnv, productGatewayEnv } from './product-env.ts';
import { concurrent, echoOnce, echoSequential, httpClient, runPythonOnce } from './product-path.ts';
import { type RoundTrip, startRawPath, type Throughput } from './raw-path.ts';
import { type EvaluatedRow, evaluate, formatTable, type Row } from './report.ts';
import { pair, type ScalingPair, spreadLoad } from './scaling.ts';
import { PARALLEL_STAGES, stageSummaries } from './stage-breakdown.ts';
import { summarize } from './stats.ts';
import { countOption, createTeardown, log, profileEnv, round } from './teardown.ts';
import { measureWaiters } from './waiters.ts';

const USAGE = `usage: npm run bench -- [options]
  --n <k>                 sequential no-op samples, product, BullMQ and each raw run (default 2000)
  --throughput-total <k>  tasks per throughput run, product, BullMQ and raw (default 5000)
  --outstanding <k>       tasks in flight in the throughput runs (default 100)
  --python-n <k>          sequential print(1+1) samples (default 200)
  --waiters <k>           concurrent long-poll waiters (default 10000)
  --skip-python           skip POST /tools/run-python (no Pyodide worker)
  --quick                 tiny counts (a smoke run of every section)
  --json <path>           where to write the JSON (default bench-results/bench.json)
  --cpu-prof <dir>        write V8 CPU profiles of the gateway and workers there (open in Chrome
                          DevTools); profiling slows them, so figures from such a run are not comparable
  --help`;

const { values } = parseArgs({
  options: {
    n: { type: 'string' },
    'throughput-total': { type: 'string' },
    outstanding: { type: 'string' },
    'python-n': { type: 'string' },
    waiters: { type: 'string' },
    'skip-python': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const count = countOption('bench', USAGE, values.quick);
const N = count('n', values.n, 30, 2000);
const TOTAL = count('throughput-total', values['throughput-total'], 60, 5000);
const OUTSTANDING = count('outstanding', values.outstanding, 10, 100);
const PY_N = count('python-n', values['python-n'], 3, 200);
const WAITERS = count('waiters', values.waiters, 50, 10000);
const WARMUP = values.quick ? 10 : 300;
const PY_THREADS = 2;
const PROFILE = profileEnv(values['cpu-prof']);
const teardown = createTeardown('bench');
const stopService = (s: ServiceProcess) => () => s.stop();

// ---------------------------------------------------------------------------- helpers
function roundTripSummaries(all: RoundTrip[]) {
  return {
    total: summarize(all.map((r) => r.total)),
    publish: summarize(all.map((r) => r.publish)),
    wait: summarize(all.map((r) => r.wait)),
    get: summarize(all.map((r) => r.get)),
  };
}

interface CpuRun extends Throughput {
  serverCpuMsPerTask: Record<string, number>;
  clientCpuMsPerTask: number;
}

async function withCpu(pids: Record<string, number>, run: () => Promise<Throughput>): Promise<CpuRun> {
  const before = cpuSnapshot(pids);
  const client0 = process.cpuUsage();
  const t = await run();
  const client = process.cpuUsage(client0);
  const after = cpuSnapshot(pids);
  return {
    ...t,
    perSecond: round(t.perSecond, 1),
    ms: Math.round(t.ms),
    serverCpuMsPerTask: cpuPerTask(before, after, t.tasks),
    clientCpuMsPerTask: round((client.user + client.system) / 1000 / t.tasks),
  };
}

// ---------------------------------------------------------------------------- main
async function main(): Promise<void> {
  const started = new Date().toISOString();
  log('bench: starting private nats-server and redis-server');
  const nats = await startPrivateNats();
  teardown.add(() => nats.close());
  const redis = await startPrivateRedis();
  teardown.add(() => redis.close());
  const admin = new Redis(redis.url, { connectionName: 'bench-admin' });
  teardown.add(async () => admin.disconnect());

  const ns = testNamespace('bench');
  const dataDir = await mkdtemp(join(tmpdir(), 'neuroagent-bench-'));
  teardown.add(() => rm(dataDir, { recursive: true, force: true }));
  const secret = randomBytes(32).toString('base64url');
  const token = await signDevToken({ secret, sub: 'bench-user', expiresInS: 6 * 3600 });
  const urls = { TASKS_NATS__URL: nats.url, TASKS_REDIS__URL: redis.url };
  const servers = { natsUrl: nats.url, redisUrl: redis.url };
  const echoEnv = echoWorkerEnv(ns, servers, PROFILE);

  log('bench: starting the echo_q worker and the gateway (auth and rate limiting on)');
  let echoWorker = await startWorker(echoEnv);
  teardown.add(() => echoWorker.stop());
  const gatewayEnvWith = (dbUrl: string) =>
    productGatewayEnv(ns, servers, { jwtSecret: secret, dbUrl, extra: PROFILE });
  const gateway = await startGateway(gatewayEnvWith(`sqlite:${join(dataDir, 'ledger.sqlite')}`));
  teardown.add(stopService(gateway));
  const gatewayPid = gateway.proc.pid ?? 0;
  const client = httpClient(gateway.url, token, Math.max(OUTSTANDING, 1));
  teardown.add(async () => client.close());

  log('bench: starting the raw worker');
  const raw = await startRawPath(nats.url, redis.url);
  teardown.add(() => raw.close());

  // A redis-server of its own: BullMQ's keys, blocking connections and CPU stay off the product's.
  log('bench: starting a second private redis-server and the BullMQ worker (concurrency 2)');
  const bullRedis = await startPrivateRedis();
  teardown.add(() => bullRedis.close());
  const bull = await startBullmqPath(bullRedis.url);
  teardown.add(() => bull.close());

  // -------------------------------------------------------------- sequential latency
  log(`bench: warm-up (${WARMUP} raw, ${WARMUP} product, ${WARMUP} BullMQ)`);
  await raw.roundTrips(WARMUP);
  await raw.barePublish(WARMUP);
  await raw.xaddWake(WARMUP);
  await echoSequential(client, WARMUP);
  await bull.sequential(WARMUP);

  log(`bench: sequential latency, raw / product / BullMQ / raw, ${N} each`);
  const rawA = await raw.roundTrips(N);
  const product = await echoSequential(client, N);
  const bullSeq = summarize(await bull.sequential(N));
  const rawB = await raw.roundTrips(N);
  const barePublish = summarize(await raw.barePublish(N));
  const xaddWake = summarize(await raw.xaddWake(N));
  const rawSeq = roundTripSummaries([...rawA, ...rawB]);
  const productSeq = summarize(product.map((s) => s.ms));
  const breakdown = stageSummaries(product);

  // -------------------------------------------------------------- throughput + CPU
  const serverPids = { redis: redis.pid() ?? 0, nats: nats.pid() ?? 0 };
  const rawPids = { rawWorker: raw.workerPid, ...serverPids };
  const productPids = { gateway: gatewayPid, worker: echoWorker.proc.pid ?? 0, ...serverPids };
  // BullMQ's producer side (Queue + QueueEvents) runs in the bench process: it is in the client
  // figure, not in the servers'.
  const bullPids = { worker: bull.workerPid, redis: bullRedis.pid() ?? 0 };
  const warmThroughput = Math.min(TOTAL, WARMUP);
  log(`bench: throughput, ${OUTSTANDING} outstanding, raw / product / BullMQ / raw, ${TOTAL} tasks each`);
  await raw.throughput(warmThroughput, OUTSTANDING);
  const rawThrA = await withCpu(rawPids, () => raw.throughput(TOTAL, OUTSTANDING));
  await concurrent(warmThroughput, OUTSTANDING, () => echoOnce(client));
  const productThr = await withCpu(productPids, () => concurrent(TOTAL, OUTSTANDING, () => echoOnce(client)));
  await concurrent(warmThroughput, OUTSTANDING, () => bull.once());
  const bullThr = await withCpu(bullPids, () => concurrent(TOTAL, OUTSTANDING, () => bull.once()));
  const rawThrB = await withCpu(rawPids, () => raw.throughput(TOTAL, OUTSTANDING));
  const rawPerSecond = round((rawThrA.perSecond + rawThrB.perSecond) / 2, 1);
  const rawCpu: Record<string, number> = {};
  for (const k of Object.keys(rawThrA.serverCpuMsPerTask)) {
    rawCpu[k] = round(((rawThrA.serverCpuMsPerTask[k] ?? 0) + (rawThrB.serverCpuMsPerTask[k] ?? 0)) / 2);
  }
  const rawClientCpu = round((rawThrA.clientCpuMsPerTask + rawThrB.clientCpuMsPerTask) / 2);

  // -------------------------------------------------------------- run-python
  let python: Record<string, unknown> | null = null;
  const scaling: { gateways?: ScalingPair; cluster?: ScalingPair; python?: ScalingPair } = {};
  if (!values['skip-python']) {
    log('bench: starting a python_q worker (the first start builds a Pyodide snapshot: up to minutes)');
    const py = await startWorker(
      workerEnv(ns, { ...urls, TASKS_QUEUES: 'python_q', TASKS_PYTHON__THREADS: String(PY_THREADS) }),
      600_000,
    );
    teardown.add(stopService(py));
    for (let i = 0; i < Math.min(WARMUP, 5); i++) await runPythonOnce(client);
    // Twice as many outstanding as threads, so that no thread waits on HTTP between its runs.
    const pyOutstanding = PY_THREADS * 2;
    log(`bench: print(1+1) sequential ×${PY_N}, then ${pyOutstanding} outstanding`);
    const seq: number[] = [];
    for (let i = 0; i < PY_N; i++) seq.push(await runPythonOnce(client));
    const pyTotal = Math.max(pyOutstanding * 2, Math.min(PY_N * 2, 400));
    const thr = await concurrent(pyTotal, pyOutstanding, () => runPythonOnce(client));
    python = {
      threads: PY_THREADS,
      sequential: summarize(seq),
      throughput: { ...thr, perSecond: round(thr.perSecond, 2), ms: Math.round(thr.ms) },
    };

    // The same load (enough in flight to keep two workers' threads busy) on 1, then 2 processes.
    const scaleOutstanding = PY_THREADS * 4;
    const scaleTotal = Math.max(scaleOutstanding * 4, Math.min(PY_N * 2, 400));
    log(`bench: scaling: print(1+1) on 1 then 2 python-worker processes, ${scaleOutstanding} outstanding`);
    const pyPids = { gateway: gatewayPid, ...serverPids };
    const pyOne = await spreadLoad(
      [client],
      scaleTotal,
      scaleOutstanding,
      runPythonOnce,
      { ...pyPids, worker1: py.proc.pid ?? 0 },
      1,
    );
    const py2 = await startWorker(
      workerEnv(ns, { ...urls, TASKS_QUEUES: 'python_q', TASKS_PYTHON__THREADS: String(PY_THREADS) }),
      600_000,
    );
    teardown.add(stopService(py2));
    for (let i = 0; i < Math.min(WARMUP, 5) * 2; i++) await runPythonOnce(client);
    const pyTwo = await spreadLoad(
      [client],
      scaleTotal,
      scaleOutstanding,
      runPythonOnce,
      { ...pyPids, worker1: py.proc.pid ?? 0, worker2: py2.proc.pid ?? 0 },
      2,
    );
    scaling.python = pair(pyOne, pyTwo);
    await py2.stop();
    await py.stop();
  }

  // -------------------------------------------------------------- scaling: gateways
  // Replicas share one PostgreSQL ledger (SQLite is for one gateway). The first gateway stays up,
  // idle, for the waiters section.
  const pg = await createPostgresDatabase('bench_scaling').catch((err: unknown) => {
    log(`bench: scaling: no PostgreSQL, skipping the gateway runs (${String(err).split('\n')[0]})`);
    return null;
  });
  if (pg) {
    teardown.add(() => pg.drop());
    log(`bench: scaling: echo through 1 then 2 gateway processes, ${OUTSTANDING} outstanding`);
    const gwA = await startGateway(gatewayEnvWith(pg.url));
    teardown.add(stopService(gwA));
    const gwB = await startGateway(gatewayEnvWith(pg.url));
    teardown.add(stopService(gwB));
    const clientA = httpClient(gwA.url, token, OUTSTANDING);
    const clientB = httpClient(gwB.url, token, OUTSTANDING);
    teardown.add(async () => {
      clientA.close();
      clientB.close();
    });
    const echoPids = {
      worker: echoWorker.proc.pid ?? 0,
      gatewayA: gwA.proc.pid ?? 0,
      gatewayB: gwB.proc.pid ?? 0,
      ...serverPids,
    };
    const echo = (c: typeof client) => echoOnce(c);
    await spreadLoad([clientA, clientB], warmThroughput, OUTSTANDING, echo, echoPids, 2);
    const gwOne = await spreadLoad([clientA], TOTAL, OUTSTANDING, echo, echoPids, 1);
    const gwTwo = await spreadLoad([clientA, clientB], TOTAL, OUTSTANDING, echo, echoPids, 2);
    scaling.gateways = pair(gwOne, gwTwo);
    await gwA.stop();
    await gwB.stop();
    // The same 2 processes from one command: NEUROAGENT_HTTP__WORKERS=2 (node:cluster, one port).
    // The primary's pid counts its workers' CPU (withDescendants).
    log(`bench: scaling: echo through one gateway command with NEUROAGENT_HTTP__WORKERS=2`);
    const gwCluster = await startGateway({ ...gatewayEnvWith(pg.url), NEUROAGENT_HTTP__WORKERS: '2' });
    teardown.add(stopService(gwCluster));
    const clientC = httpClient(gwCluster.url, token, OUTSTANDING);
    teardown.add(async () => clientC.close());
    const clusterPids = { worker: echoWorker.proc.pid ?? 0, gateway: gwCluster.proc.pid ?? 0, ...serverPids };
    await spreadLoad([clientC], warmThroughput, OUTSTANDING, echo, clusterPids, 2);
    scaling.cluster = pair(gwOne, await spreadLoad([clientC], TOTAL, OUTSTANDING, echo, clusterPids, 2));
    await gwCluster.stop();
  }

  // -------------------------------------------------------------- waiters
  log(`bench: ${WAITERS} concurrent long-poll waiters (echo worker stopped while they open)`);
  await echoWorker.stop();
  const waiters = await measureWaiters({
    url: gateway.url,
    token,
    count: WAITERS,
    redis: admin,
    progressKey: (id) => ns.names.progressKey(id),
    gatewayPid: () => gatewayPid,
    async startWorker() {
      echoWorker = await startWorker(echoEnv);
    },
    log,
  });

  // -------------------------------------------------------------- report
  const productCpuTotal = productThr.serverCpuMsPerTask.total ?? Number.NaN;
  const rawCpuTotal = rawCpu.total ?? Number.NaN;
  const rows: Row[] = [
    {
      metric: 'no-op p50, sequential',
      product: productSeq.p50,
      raw: rawSeq.total.p50,
      bullmq: bullSeq.p50,
      unit: 'ms',
      goal: { kind: 'max', limit: 1.3, on: 'ratio' },
    },
    {
      metric: 'no-op p95, sequential',
      product: productSeq.p95,
      raw: rawSeq.total.p95,
      bullmq: bullSeq.p95,
      unit: 'ms',
    },
    {
      metric: 'no-op p99, sequential',
      product: productSeq.p99,
      raw: rawSeq.total.p99,
      bullmq: bullSeq.p99,
      unit: 'ms',
      goal: { kind: 'max', limit: 5, on: 'value' },
    },
    {
      metric: `no-op throughput, ${OUTSTANDING} outstanding`,
      product: productThr.perSecond,
      raw: rawPerSecond,
      bullmq: bullThr.perSecond,
      unit: '/s',
      goal: { kind: 'min', limit: 0.8, on: 'ratio' },
    },
    {
      metric: 'CPU/task, servers (gw+worker+redis+nats; BullMQ: worker+redis)',
      product: productCpuTotal,
      raw: rawCpuTotal,
      bullmq: bullThr.serverCpuMsPerTask.total ?? null,
      unit: 'ms',
      goal: { kind: 'max', limit: 1.35, on: 'ratio' },
    },
    {
      metric: '  CPU/task gateway',
      product: productThr.serverCpuMsPerTask.gateway ?? null,
      raw: null,
      unit: 'ms',
      goal: { kind: 'max', limit: 0.15, on: 'value' },
    },
    {
      metric: '  CPU/task worker (raw: raw worker)',
      product: productThr.serverCpuMsPerTask.worker ?? null,
      raw: rawCpu.rawWorker ?? null,
      bullmq: bullThr.serverCpuMsPerTask.worker ?? null,
      unit: 'ms',
    },
    {
      metric: '  CPU/task redis-server',
      product: productThr.serverCpuMsPerTask.redis ?? null,
      raw: rawCpu.redis ?? null,
      bullmq: bullThr.serverCpuMsPerTask.redis ?? null,
      unit: 'ms',
    },
    {
      metric: '  CPU/task nats-server',
      product: productThr.serverCpuMsPerTask.nats ?? null,
      raw: rawCpu.nats ?? null,
      unit: 'ms',
    },
    {
      metric: 'CPU/task, client (bench process; BullMQ: Queue+QueueEvents)',
      product: productThr.clientCpuMsPerTask,
      raw: rawClientCpu,
      bullmq: bullThr.clientCpuMsPerTask,
      unit: 'ms',
    },
    // The goals against BullMQ, measured side by side in this run.
    {
      metric: `goal: no-op throughput vs BullMQ, ${OUTSTANDING} outstanding`,
      product: productThr.perSecond,
      bullmq: bullThr.perSecond,
      unit: '/s',
      goal: { kind: 'min', limit: 1, on: 'bullmq' },
    },
    {
      metric: 'goal: no-op p50 vs BullMQ',
      product: productSeq.p50,
      bullmq: bullSeq.p50,
      unit: 'ms',
      goal: { kind: 'max', limit: 2, on: 'bullmq' },
    },
  ];
  // The gateway's own stages next to the raw step doing the same job, where there is one.
  const rawStage: Record<string, number> = {
    publish: barePublish.p50,
    wait: rawSeq.wait.p50,
    read: rawSeq.get.p50,
  };
  if (breakdown.available) {
    for (const [name, s] of Object.entries(breakdown.stages)) {
      rows.push({ metric: `  stage p50: ${name}`, product: s.p50, raw: rawStage[name] ?? null, unit: 'ms' });
    }
    rows.push({
      metric: '  outside stages (HTTP, Koa, client)¹',
      product: breakdown.outside?.p50 ?? null,
      raw: null,
      unit: 'ms',
    });
  } else {
    rows.push({ metric: '  stage breakdown', product: 'unavailable (no Server-Timing)', raw: null });
  }
  rows.push(
    { metric: '  raw: publish → PubAck', product: null, raw: rawSeq.publish.p50, unit: 'ms' },
    { metric: '  raw: PubAck → XREAD wake', product: null, raw: rawSeq.wait.p50, unit: 'ms' },
    { metric: '  raw: GET result', product: null, raw: rawSeq.get.p50, unit: 'ms' },
    { metric: '  raw: bare publish (alone)', product: null, raw: barePublish.p50, unit: 'ms' },
    { metric: '  raw: XADD → XREAD wake (alone)', product: null, raw: xaddWake.p50, unit: 'ms' },
  );
  if (python) {
    const seq = python.sequential as ReturnType<typeof summarize>;
    const thr = python.throughput as { perSecond: number };
    rows.push(
      { metric: 'print(1+1) p50', product: seq.p50, unit: 'ms' },
      { metric: 'print(1+1) p99', product: seq.p99, unit: 'ms' },
      { metric: `print(1+1) throughput, ${PY_THREADS} threads busy`, product: thr.perSecond, unit: '/s' },
    );
  }
  if (scaling.gateways) {
    const { one, two, ratio } = scaling.gateways;
    rows.push(
      {
        metric: 'scaling: echo /s, 1 gateway (raw: raw limit)',
        product: one.perSecond,
        raw: rawPerSecond,
        unit: '/s',
      },
      {
        metric: 'scaling: echo /s, 2 gateways (raw: raw limit)',
        product: two.perSecond,
        raw: rawPerSecond,
        unit: '/s',
      },
      { metric: 'scaling: echo, 2 gateways ÷ 1', product: ratio, unit: '×' },
      {
        metric: 'scaling: cores busy, 1 → 2 gateways',
        product: `${one.coresBusy} → ${two.coresBusy} of ${cpus().length}`,
      },
    );
  }
  if (scaling.cluster) {
    const { two, ratio } = scaling.cluster;
    rows.push(
      {
        metric: 'scaling: echo /s, NEUROAGENT_HTTP__WORKERS=2 (raw: raw limit)',
        product: two.perSecond,
        raw: rawPerSecond,
        unit: '/s',
      },
      { metric: 'scaling: echo, HTTP__WORKERS=2 ÷ 1 gateway', product: ratio, unit: '×' },
      { metric: 'scaling: cores busy, HTTP__WORKERS=2', product: `${two.coresBusy} of ${cpus().length}` },
    );
  }
  if (scaling.python) {
    const { one, two, ratio } = scaling.python;
    rows.push(
      { metric: 'scaling: print(1+1) /s, 1 python worker', product: one.perSecond, unit: '/s' },
      { metric: 'scaling: print(1+1) /s, 2 python workers', product: two.perSecond, unit: '/s' },
      { metric: 'scaling: print(1+1), 2 workers ÷ 1', product: ratio, unit: '×' },
      {
        metric: 'scaling: cores busy, 1 → 2 workers',
        product: `${one.coresBusy} → ${two.coresBusy} of ${cpus().length}`,
      },
    );
  }
  rows.push(
    {
      metric: `${WAITERS} waiters: gateway Redis connections`,
      product: waiters.redisConnections.withWaiters.total,
      unit: '',
      goal: { kind: 'max', limit: 4, on: 'value' },
    },
    {
      metric: `${WAITERS} waiters: of which blocking`,
      product: waiters.redisConnections.withWaiters.blocking,
      unit: '',
    },
    { metric: 'gateway RSS before waiters', product: waiters.gatewayRssMb.before, unit: 'MB' },
    { metric: `gateway RSS with ${WAITERS} waiters`, product: waiters.gatewayRssMb.withWaiters, unit: 'MB' },
    { metric: 'wake-up latency p50 (done → response)', product: waiters.wakeMs.p50, unit: 'ms' },
    { metric: 'wake-up latency p95', product: waiters.wakeMs.p95, unit: 'ms' },
    { metric: 'wake-up latency p99', product: waiters.wakeMs.p99, unit: 'ms' },
    { metric: 'wake-up latency max', product: waiters.wakeMs.max, unit: 'ms' },
    {
      metric: 'all waiters answered (first done → last)',
      product: waiters.allAnsweredMs.fromFirstDone,
      unit: 'ms',
    },
  );
  const table: EvaluatedRow[] = rows.map(evaluate);
  process.stdout.write(`\n${formatTable(table)}\n`);
  if (breakdown.available) {
    process.stdout.write(
      `¹ client latency − the gateway's Server-Timing stages (${PARALLEL_STAGES.map((g) => g.join(' ‖ ')).join(', ')} run side by side: the longer counts)\n`,
    );
  }
  process.stdout.write('\n');

  const goals = table
    .filter((r) => r.goal)
    .map((r) => ({
      metric: r.metric,
      goal: r.goalText,
      value: r.goal?.on === 'ratio' ? r.ratio : r.goal?.on === 'bullmq' ? r.vsBullmq : r.product,
      met: r.met,
    }));
  const result = {
    command: process.argv.slice(1).join(' '),
    started,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadavg: loadavg(),
      platform: process.platform,
    },
    config: {
      n: N,
      throughputTotal: TOTAL,
      outstanding: OUTSTANDING,
      pythonN: PY_N,
      waiters: WAITERS,
      warmup: WARMUP,
      quick: values.quick,
    },
    raw: {
      roundTrip: rawSeq,
      runs: { a: roundTripSummaries(rawA).total, b: roundTripSummaries(rawB).total },
      barePublish,
      xaddWake,
      throughput: { perSecondUsed: rawPerSecond, runs: [rawThrA, rawThrB] },
      cpuMsPerTask: { server: rawCpu, client: rawClientCpu },
    },
    product: {
      echo: { sequential: productSeq, serverTiming: breakdown },
      throughput: productThr,
      cpuMsPerTask: { server: productThr.serverCpuMsPerTask, client: productThr.clientCpuMsPerTask },
    },
    bullmq: {
      version: BULLMQ_VERSION,
      workerConcurrency: bull.concurrency,
      sequential: bullSeq,
      throughput: bullThr,
      cpuMsPerTask: { server: bullThr.serverCpuMsPerTask, client: bullThr.clientCpuMsPerTask },
    },
    python,
    scaling,
    waiters,
    goals,
    table: table.map(({ metric, product, raw, bullmq, unit, ratio, vsBullmq, goalText, met }) => ({
      metric,
      product,
      raw: raw ?? null,
      bullmq: bullmq ?? null,
      unit: unit ?? '',
      ratio,
      vsBullmq,
      goal: goalText,
      met,
    })),
  };
  const path = values.json ? writeResultTo(values.json, result) : writeResult('bench', result);
  log(`bench: results written to ${path}`);
}

main()
  .then(teardown.run, async (err: unknown) => {
    log(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await teardown.run();
    process.exitCode = 1;
  })
  .finally(() => process.exit());
