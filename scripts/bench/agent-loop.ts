// `npm run bench:agent [-- --smoke | --rounds 10 --per-round 30 --json p]`: the agent loop's own
// overhead per tool call — the gateway's time outside the model and the task — measured in ONE run
// against the bench's own private nats-server and redis-server, a scripted model server that
// answers at once (in this process), the real gateway process (auth on, rate limiting off,
// NEUROAGENT_AGENT__TOOLS=echo) and an echo_q worker process. Interleaved in rounds, a block of
// each:
//   (a)  a turn with 1 echo call: POST /threads/{id}/messages, Accept: application/json;
//   (b)  a turn with 4 parallel echo calls;
//   (c)  the baseline of (a): the same parts done by the client — two streamed model calls with
//        the openai SDK around one POST /tasks?wait=5 — so (a) − (c) is the loop's own cost;
//   (b′) the baseline of (b): the same with 4 parallel POST /tasks?wait=5;
//   (d)  the raw limit: JetStream publish → raw worker SET + XADD → XREAD wake → GET (raw-path.ts).
// Also the gateway's own agent_loop_overhead_seconds (GET /metrics) over the turn blocks, and CPU
// per sample of each process from /proc. Speed is only reported as ratios within this run.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { signDevToken } from '../../services/gateway/src/auth/dev-token.ts';
import { gatewayEnv, testNamespace, workerEnv } from '../../services/platform/src/testing.ts';
import { startOpenAiTestServer } from '../../services/platform/src/testing-openai.ts';
import { startPrivateNats, startPrivateRedis } from '../../test/support/private-servers.ts';
import { type ServiceProcess, startGateway, startWorker } from '../../test/support/processes.ts';
import { agentScript, baselineOnce, newThread, readOverhead, turnOnce } from './agent-path.ts';
import { writeResult, writeResultTo } from './lib.ts';
import { cpuSnapshot } from './process-cpu.ts';
import { httpClient } from './product-path.ts';
import { startRawPath } from './raw-path.ts';
import { type EvaluatedRow, evaluate, formatTable, type Row } from './report.ts';
import { summarize } from './stats.ts';
import { countOption, createTeardown, log, profileEnv, round } from './teardown.ts';

const USAGE = `usage: npm run bench:agent -- [options]
  --rounds <k>      interleaved rounds (default 10; env BENCH_AGENT_ROUNDS)
  --per-round <k>   samples of each kind per round (default 30; env BENCH_AGENT_PER_ROUND)
  --warmup <k>      unrecorded samples of each kind first (default 30)
  --smoke           small counts (2 rounds of 10, warm-up 5): a smoke run for the test
  --json <path>     where to write the JSON (default bench-results/agent-loop.json)
  --cpu-prof <dir>  write V8 CPU profiles of the gateway and the worker there; profiling slows
                    them, so figures from such a run are not comparable
  --help`;

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'per-round': { type: 'string' },
    warmup: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const count = countOption('bench:agent', USAGE, values.smoke);
const ROUNDS = count('rounds', values.rounds ?? process.env.BENCH_AGENT_ROUNDS, 2, 10);
const PER_ROUND = count('per-round', values['per-round'] ?? process.env.BENCH_AGENT_PER_ROUND, 10, 30);
const WARMUP = count('warmup', values.warmup, 5, 30);
const PARALLEL = 4;
const PROFILE = profileEnv(values['cpu-prof']);
const teardown = createTeardown('bench:agent');
const stopService = (s: ServiceProcess) => () => s.stop();

// ---------------------------------------------------------------------------- the kinds
const KINDS = ['turn1', 'turn4', 'base1', 'base4', 'raw'] as const;
type Kind = (typeof KINDS)[number];
const isTurn = (k: Kind) => k === 'turn1' || k === 'turn4';

interface Tally {
  ms: number[];
  /** CPU ms of each process over this kind's blocks. */
  cpuMs: Record<string, number>;
  /** agent_loop_overhead_seconds over this kind's blocks (turns only). */
  overheadS: number;
  overheadTurns: number;
  echoCalls: number;
}

// ---------------------------------------------------------------------------- main
async function main(): Promise<void> {
  const started = new Date().toISOString();
  log('bench:agent: starting private nats-server and redis-server, and the scripted model server');
  const nats = await startPrivateNats();
  teardown.add(() => nats.close());
  const redis = await startPrivateRedis();
  teardown.add(() => redis.close());
  const llm = await startOpenAiTestServer((request) => agentScript(request));
  teardown.add(() => llm.close());
  // The scripted server records every request; a long run must not keep them all.
  const forget = setInterval(() => llm.requests.splice(0), 1000);
  teardown.add(async () => clearInterval(forget));

  const ns = testNamespace('benchagent');
  const dataDir = await mkdtemp(join(tmpdir(), 'neuroagent-bench-agent-'));
  teardown.add(() => rm(dataDir, { recursive: true, force: true }));
  const secret = randomBytes(32).toString('base64url');
  const token = await signDevToken({ secret, sub: 'bench-user', expiresInS: 6 * 3600 });

  log('bench:agent: starting the echo_q worker and the gateway (auth on, rate limiting off, tools: echo)');
  const worker = await startWorker(
    workerEnv(ns, {
      ...PROFILE,
      TASKS_NATS__URL: nats.url,
      TASKS_REDIS__URL: redis.url,
      TASKS_QUEUES: 'echo_q',
      TASKS_NATS__MAX_ACK_PENDING: '256',
      TASKS_NATS__FETCH_EXPIRES_MS: '5000',
    }),
  );
  teardown.add(stopService(worker));
  const gateway = await startGateway({
    PATH: process.env.PATH ?? '',
    ...gatewayEnv(ns, {
      ...PROFILE,
      NEUROAGENT_NATS__URL: nats.url,
      NEUROAGENT_REDIS__URL: redis.url,
      NEUROAGENT_AUTH__DISABLED: 'false',
      NEUROAGENT_AUTH__JWT_SECRET: secret,
      NEUROAGENT_RATE_LIMIT__DISABLED: 'true',
      NEUROAGENT_DB__URL: `sqlite:${join(dataDir, 'ledger.sqlite')}`,
      NEUROAGENT_LLM__BASE_URL: llm.baseUrl,
      NEUROAGENT_AGENT__TOOLS: 'echo',
    }),
  });
  teardown.add(stopService(gateway));
  const client = httpClient(gateway.url, token, 16);
  teardown.add(async () => client.close());
  const openai = new OpenAI({ baseURL: llm.baseUrl, apiKey: 'unused', maxRetries: 0 });

  log('bench:agent: starting the raw worker');
  const raw = await startRawPath(nats.url, redis.url);
  teardown.add(() => raw.close());

  const serverPids = { redis: redis.pid() ?? 0, nats: nats.pid() ?? 0 };
  const productPids = { gateway: gateway.proc.pid ?? 0, worker: worker.proc.pid ?? 0, ...serverPids };
  const rawPids = { rawWorker: raw.workerPid, ...serverPids };

  async function sample(kind: Kind, threadId: string | undefined): Promise<number> {
    switch (kind) {
      case 'turn1':
        return turnOnce(client, threadId ?? '', 1);
      case 'turn4':
        return turnOnce(client, threadId ?? '', PARALLEL);
      case 'base1':
        return baselineOnce(openai, client, 1);
      case 'base4':
        return baselineOnce(openai, client, PARALLEL);
      case 'raw': {
        const [trip] = await raw.roundTrips(1);
        return trip?.total ?? Number.NaN;
      }
    }
  }

  const tallies = Object.fromEntries(
    KINDS.map((k) => [k, { ms: [], cpuMs: {}, overheadS: 0, overheadTurns: 0, echoCalls: 0 } as Tally]),
  ) as Record<Kind, Tally>;

  /** `n` samples of one kind back to back; each turn gets a fresh thread, made before the clock. */
  async function block(kind: Kind, n: number, record: boolean): Promise<void> {
    const threads: string[] = [];
    if (isTurn(kind)) for (let i = 0; i < n; i++) threads.push(await newThread(client));
    const m0 = isTurn(kind) && record ? await readOverhead(client) : null;
    const pids = kind === 'raw' ? rawPids : productPids;
    const c0 = cpuSnapshot(pids);
    const ms: number[] = [];
    for (let i = 0; i < n; i++) ms.push(await sample(kind, threads[i]));
    const c1 = cpuSnapshot(pids);
    if (!record) return;
    const t = tallies[kind];
    t.ms.push(...ms);
    for (const [name, v] of Object.entries(c1)) t.cpuMs[name] = (t.cpuMs[name] ?? 0) + v - (c0[name] ?? v);
    if (m0) {
      const m1 = await readOverhead(client);
      t.overheadS += m1.sum - m0.sum;
      t.overheadTurns += m1.count - m0.count;
      t.echoCalls += m1.echoCalls - m0.echoCalls;
    }
  }

  log(`bench:agent: warm-up, ${WARMUP} of each kind`);
  for (const kind of KINDS) await block(kind, WARMUP, false);
  log(
    `bench:agent: ${ROUNDS} rounds × ${PER_ROUND} of each of ${KINDS.join(', ')} (order rotated per round)`,
  );
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < KINDS.length; i++)
      await block(KINDS[(r + i) % KINDS.length] as Kind, PER_ROUND, true);
  }
  const measuredS = (performance.now() - t0) / 1000;

  // -------------------------------------------------------------- figures
  const s = Object.fromEntries(KINDS.map((k) => [k, summarize(tallies[k].ms)])) as Record<
    Kind,
    ReturnType<typeof summarize>
  >;
  const n = ROUNDS * PER_ROUND;
  const cpuPer = (k: Kind) =>
    Object.fromEntries(Object.entries(tallies[k].cpuMs).map(([name, v]) => [name, round(v / n)]));
  const cpu = Object.fromEntries(KINDS.map((k) => [k, cpuPer(k)])) as Record<Kind, Record<string, number>>;
  const total = (c: Record<string, number>) => round(Object.values(c).reduce((a, b) => a + b, 0));
  const gw = (k: Kind) => cpu[k].gateway ?? Number.NaN;
  const meanMs = (k: Kind) =>
    tallies[k].overheadTurns > 0
      ? round((tallies[k].overheadS * 1000) / tallies[k].overheadTurns)
      : Number.NaN;
  const overhead = {
    perCall1: round(s.turn1.p50 - s.base1.p50),
    perCall4: round((s.turn4.p50 - s.base4.p50) / PARALLEL),
    metricMean1: meanMs('turn1'),
    metricMean4: meanMs('turn4'),
    gatewayCpuPerCall1: round(gw('turn1') - gw('base1')),
    gatewayCpuPerCall4: round((gw('turn4') - gw('base4')) / PARALLEL),
  };
  const rawCpuTotal = total(cpu.raw);

  const rows: Row[] = [
    { metric: '(a) turn, 1 echo call, p50', product: s.turn1.p50, raw: s.raw.p50, unit: 'ms' },
    { metric: '(a) turn, 1 echo call, p95', product: s.turn1.p95, raw: s.raw.p95, unit: 'ms' },
    {
      metric: `(b) turn, ${PARALLEL} parallel echo calls, p50`,
      product: s.turn4.p50,
      raw: s.raw.p50,
      unit: 'ms',
    },
    {
      metric: `(b) turn, ${PARALLEL} parallel echo calls, p95`,
      product: s.turn4.p95,
      raw: s.raw.p95,
      unit: 'ms',
    },
    {
      metric: '(c) baseline of (a): 2 model calls + POST /tasks, p50',
      product: s.base1.p50,
      raw: s.raw.p50,
      unit: 'ms',
    },
    { metric: '(c) baseline of (a), p95', product: s.base1.p95, raw: s.raw.p95, unit: 'ms' },
    {
      metric: `(b′) baseline of (b): 2 model calls + ${PARALLEL} × POST /tasks, p50`,
      product: s.base4.p50,
      raw: s.raw.p50,
      unit: 'ms',
    },
    { metric: '(b′) baseline of (b), p95', product: s.base4.p95, raw: s.raw.p95, unit: 'ms' },
    { metric: '(d) raw: publish → XADD → XREAD wake → GET', product: null, raw: s.raw.p50, unit: 'ms' },
    {
      metric: 'overhead per tool call, (a) − (c), p50',
      product: overhead.perCall1,
      raw: s.raw.p50,
      unit: 'ms',
    },
    {
      metric: `overhead per tool call, ((b) − (b′)) / ${PARALLEL}, p50`,
      product: overhead.perCall4,
      raw: s.raw.p50,
      unit: 'ms',
    },
    {
      metric: 'agent_loop_overhead_seconds mean, (a) turns',
      product: overhead.metricMean1,
      raw: s.raw.p50,
      unit: 'ms',
    },
    {
      metric: 'agent_loop_overhead_seconds mean, (b) turns',
      product: overhead.metricMean4,
      raw: s.raw.p50,
      unit: 'ms',
    },
    {
      metric: 'CPU/turn (a), servers (gw+worker+redis+nats)',
      product: total(cpu.turn1),
      raw: rawCpuTotal,
      unit: 'ms',
    },
    { metric: '  CPU/turn (a) gateway', product: gw('turn1'), raw: null, unit: 'ms' },
    { metric: '  CPU/turn (b) gateway', product: gw('turn4'), raw: null, unit: 'ms' },
    { metric: '  CPU (c) gateway: one POST /tasks', product: gw('base1'), raw: null, unit: 'ms' },
    { metric: `  CPU (b′) gateway: ${PARALLEL} × POST /tasks`, product: gw('base4'), raw: null, unit: 'ms' },
    {
      metric: 'gateway CPU per tool call, (a) − (c) (raw: raw servers)',
      product: overhead.gatewayCpuPerCall1,
      raw: rawCpuTotal,
      unit: 'ms',
    },
    {
      metric: `gateway CPU per tool call, ((b) − (b′)) / ${PARALLEL} (raw: raw servers)`,
      product: overhead.gatewayCpuPerCall4,
      raw: rawCpuTotal,
      unit: 'ms',
    },
  ];
  const table: EvaluatedRow[] = rows.map(evaluate);
  process.stdout.write(`\n${formatTable(table)}\n`);
  process.stdout.write(
    `${n} samples of each kind (${ROUNDS} rounds × ${PER_ROUND}), measured in ${measuredS.toFixed(1)} s; ` +
      `${cpus().length} cores, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n\n`,
  );

  const result = {
    command: process.argv.slice(1).join(' '),
    started,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadavg: loadavg(),
      platform: process.platform,
    },
    config: { rounds: ROUNDS, perRound: PER_ROUND, warmup: WARMUP, parallel: PARALLEL, smoke: values.smoke },
    latencyMs: s,
    overheadMs: overhead,
    metric: Object.fromEntries(
      (['turn1', 'turn4'] as const).map((k) => [
        k,
        { turns: tallies[k].overheadTurns, echoCalls: tallies[k].echoCalls, meanMsPerCall: meanMs(k) },
      ]),
    ),
    cpuMsPerSample: cpu,
    table: table.map(({ metric, product, raw, unit, ratio }) => ({
      metric,
      product,
      raw: raw ?? null,
      unit: unit ?? '',
      ratio,
    })),
  };
  const path = values.json ? writeResultTo(values.json, result) : writeResult('agent-loop', result);
  log(`bench:agent: results written to ${path}`);
}

main()
  .then(teardown.run, async (err: unknown) => {
    log(`bench:agent: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await teardown.run();
    process.exitCode = 1;
  })
  .finally(() => process.exit());
