// `npm run bench:profile [-- --total 20000 --outstanding 100 --baseline <git ref> --label x --keep]`:
// where the gateway's CPU goes on the no-op path. The echo task through POST /tasks?wait= on the
// product's gateway (auth, rate limit, SQLite ledger on, as in `npm run bench`), against the bench's
// own nats-server and redis-server and one echo_q worker:
//   1. unprofiled passes: throughput and the gateway's CPU per task (from /proc);
//   2. a pass under `--cpu-prof`: the V8 profile of the measured window, reduced to self time per
//      owner and per function.
// With --baseline, the gateway of that commit (checked out beside this tree, see
// baseline-checkout.ts) runs the same passes, interleaved with the current one's, so that the
// before/after ratio comes from one run. Profiling slows a gateway: profiled figures are compared
// with profiled ones only. Writes bench-results/profile-<label>.json, and the .cpuprofile files too
// with --keep (open them in Chrome DevTools).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { signDevToken } from '../../services/gateway/src/auth/dev-token.ts';
import { testNamespace } from '../../services/platform/src/testing.ts';
import { startPrivateNats, startPrivateRedis } from '../../test/support/private-servers.ts';
import { GATEWAY_MAIN, ROOT, startGateway, startWorker } from '../../test/support/processes.ts';
import { checkoutBaseline } from './baseline-checkout.ts';
import { type CpuProfile, summarizeProfile } from './cpu-profile.ts';
import { writeResult } from './lib.ts';
import { cpuPerTask, cpuSnapshot } from './process-cpu.ts';
import { echoWorkerEnv, productGatewayEnv } from './product-env.ts';
import { concurrent, echoOnce, echoSequential, httpClient } from './product-path.ts';
import { stageSummaries } from './stage-breakdown.ts';
import { summarize } from './stats.ts';
import { countOption, createTeardown, log, profileEnv, round } from './teardown.ts';

const USAGE = `usage: npm run bench:profile -- [options]
  --total <k>        tasks per pass (default 20000)
  --outstanding <k>  tasks in flight (default 100)
  --rounds <k>       unprofiled passes of each gateway, interleaved (default 2)
  --sequential <k>   sequential requests per unprofiled pass, for latency (default 1000)
  --baseline <ref>   also run the gateway of this commit (e.g. a tag, or HEAD~3), for a ratio
  --label <name>     names the result: bench-results/profile-<name>.json (default "gateway")
  --keep             also copy the .cpuprofile files next to the JSON
  --profile-worker   also profile the echo_q worker, over the whole run (its self time by owner)
  --quick            a smoke run (tiny counts)
  --help`;

const { values } = parseArgs({
  options: {
    total: { type: 'string' },
    outstanding: { type: 'string' },
    rounds: { type: 'string' },
    sequential: { type: 'string' },
    baseline: { type: 'string' },
    label: { type: 'string', default: 'gateway' },
    keep: { type: 'boolean', default: false },
    'profile-worker': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!/^[\w.-]+$/.test(values.label)) {
  process.stderr.write(`bench:profile: --label must be letters, digits, '.', '_' or '-'\n${USAGE}\n`);
  process.exit(64);
}
const count = countOption('bench:profile', USAGE, values.quick);
const TOTAL = count('total', values.total, 200, 20_000);
const OUTSTANDING = count('outstanding', values.outstanding, 10, 100);
const ROUNDS = count('rounds', values.rounds, 1, 2);
const SEQUENTIAL = count('sequential', values.sequential, 20, 1000);
const WARMUP = Math.min(TOTAL, values.quick ? 50 : 2000);
const teardown = createTeardown('bench:profile');
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

interface Variant {
  name: 'current' | 'baseline';
  commit: string;
  main: string;
}

interface Pass {
  perSecond: number;
  gatewayCpuMsPerTask: number;
  window: { fromUs: number; toUs: number };
  /** Sequential latency and its stages' p50s (unprofiled passes only). */
  latency?: { p50: number; p99: number; stagesP50: Record<string, number>; outsideP50: number | null };
}

const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));

async function main(): Promise<void> {
  const variants: Variant[] = [
    {
      name: 'current',
      commit: execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(),
      main: GATEWAY_MAIN,
    },
  ];
  if (values.baseline !== undefined) {
    log(`bench:profile: checking out ${values.baseline} beside this tree`);
    const base = await checkoutBaseline(values.baseline);
    teardown.add(() => base.remove());
    variants.push({ name: 'baseline', commit: base.commit, main: base.gatewayMain });
  }
  const nats = await startPrivateNats();
  teardown.add(() => nats.close());
  const redis = await startPrivateRedis();
  teardown.add(() => redis.close());
  const dir = await mkdtemp(join(tmpdir(), 'neuroagent-profile-'));
  teardown.add(() => rm(dir, { recursive: true, force: true }));
  const ns = testNamespace('profile');
  const servers = { natsUrl: nats.url, redisUrl: redis.url };
  const secret = randomBytes(32).toString('base64url');
  const token = await signDevToken({ secret, sub: 'bench-user', expiresInS: 3600 });
  const workerProfDir = join(dir, 'prof-worker');
  const worker = await startWorker(
    echoWorkerEnv(ns, servers, values['profile-worker'] ? profileEnv(workerProfDir) : {}),
  );
  teardown.add(() => worker.stop());

  let passes = 0;
  const pass = async (v: Variant, extra: Record<string, string>, sequential = 0): Promise<Pass> => {
    const env = productGatewayEnv(ns, servers, {
      jwtSecret: secret,
      dbUrl: `sqlite:${join(dir, `ledger-${++passes}.sqlite`)}`,
      extra,
    });
    const gateway = await startGateway(env, v.main);
    const client = httpClient(gateway.url, token, OUTSTANDING);
    try {
      await concurrent(WARMUP, OUTSTANDING, () => echoOnce(client));
      const pid = gateway.proc.pid ?? 0;
      const before = cpuSnapshot({ gateway: pid });
      const fromUs = monotonicUs();
      const run = await concurrent(TOTAL, OUTSTANDING, () => echoOnce(client));
      const window = { fromUs, toUs: monotonicUs() };
      const cpu = cpuPerTask(before, cpuSnapshot({ gateway: pid }), TOTAL);
      const result: Pass = {
        perSecond: round(run.perSecond, 1),
        gatewayCpuMsPerTask: cpu.gateway ?? Number.NaN,
        window,
      };
      if (sequential > 0) {
        const samples = await echoSequential(client, sequential);
        const total = summarize(samples.map((x) => x.ms));
        const { stages, outside } = stageSummaries(samples);
        result.latency = {
          p50: total.p50,
          p99: total.p99,
          stagesP50: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, v.p50])),
          outsideP50: outside?.p50 ?? null,
        };
      }
      return result;
    } finally {
      client.close();
      await gateway.stop();
    }
  };

  // Unprofiled, interleaved (the order flips each round), so that a change in the machine's load
  // falls on every gateway alike.
  const plain = new Map<Variant, Pass[]>(variants.map((v) => [v, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      log(
        `bench:profile: ${v.name} gateway, round ${r + 1}: ${WARMUP} warm-up, ${TOTAL} tasks, ` +
          `then ${SEQUENTIAL} one at a time`,
      );
      const p = await pass(v, {}, SEQUENTIAL);
      log(
        `bench:profile:   ${p.perSecond}/s, gateway CPU ${p.gatewayCpuMsPerTask} ms per task; ` +
          `sequential p50 ${p.latency?.p50} ms, p99 ${p.latency?.p99} ms`,
      );
      plain.get(v)?.push(p);
    }
  }

  const results: Record<string, unknown> = {};
  const lines: string[] = [];
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(6);
  for (const v of variants) {
    const profDir = join(dir, `prof-${v.name}`);
    log(`bench:profile: ${v.name} gateway under --cpu-prof`);
    const profiled = await pass(v, profileEnv(profDir));
    const files = (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length !== 1) throw new Error(`expected one gateway .cpuprofile, found ${files.length}`);
    const file = join(profDir, files[0] as string);
    const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    if (profile.startTime > profiled.window.fromUs || profile.endTime < profiled.window.toUs) {
      throw new Error('the profile does not cover the measured window: its clock is not the monotonic one');
    }
    const summary = summarizeProfile(profile, 30, profiled.window);
    const runs = plain.get(v) ?? [];
    const cpuMs = mean(runs.map((p) => p.gatewayCpuMsPerTask));
    const perSecond = round(mean(runs.map((p) => p.perSecond)), 1);
    const busyMsPerTask = round(summary.busyMs / TOTAL);
    const p50 = mean(runs.map((p) => p.latency?.p50 ?? Number.NaN));
    const p99 = mean(runs.map((p) => p.latency?.p99 ?? Number.NaN));
    results[v.name] = {
      commit: v.commit,
      unprofiled: {
        runs: runs.map(({ window: _w, ...p }) => p),
        gatewayCpuMsPerTask: cpuMs,
        perSecond,
        sequentialP50: p50,
        sequentialP99: p99,
      },
      profiled: { perSecond: profiled.perSecond, busyMsPerTask },
      profile: summary,
    };
    if (values.keep) {
      await copyFile(file, `bench-results/profile-${values.label}-${v.name}.cpuprofile`);
    }
    lines.push(
      `${v.name} gateway (${v.commit.slice(0, 10)}): ${perSecond}/s, ${cpuMs} ms CPU per task ` +
        `(unprofiled, mean of ${runs.length}); sequential p50 ${p50} ms, p99 ${p99} ms; ` +
        `profiled: ${busyMsPerTask} ms busy per task; self time by owner:`,
      ...summary.byOwner.slice(0, 15).map((o) => `  ${pct(o.share)}  ${o.owner}`),
      'self time by function:',
      ...summary.byFunction.slice(0, 20).map((f) => `  ${pct(f.share)}  ${f.fn}`),
    );
  }
  const ratio =
    variants.length === 2
      ? (() => {
          const [c, b] = [results.current, results.baseline] as {
            unprofiled: {
              gatewayCpuMsPerTask: number;
              perSecond: number;
              sequentialP50: number;
              sequentialP99: number;
            };
            profiled: { busyMsPerTask: number };
          }[];
          return {
            gatewayCpuPerTask: round(
              (c?.unprofiled.gatewayCpuMsPerTask ?? 0) / (b?.unprofiled.gatewayCpuMsPerTask ?? 1),
            ),
            throughput: round((c?.unprofiled.perSecond ?? 0) / (b?.unprofiled.perSecond ?? 1)),
            sequentialP50: round((c?.unprofiled.sequentialP50 ?? 0) / (b?.unprofiled.sequentialP50 ?? 1)),
            sequentialP99: round((c?.unprofiled.sequentialP99 ?? 0) / (b?.unprofiled.sequentialP99 ?? 1)),
            profiledBusyPerTask: round((c?.profiled.busyMsPerTask ?? 0) / (b?.profiled.busyMsPerTask ?? 1)),
          };
        })()
      : null;
  if (ratio) {
    lines.push(
      `current / baseline: gateway CPU per task ×${ratio.gatewayCpuPerTask}, throughput ×${ratio.throughput}, ` +
        `sequential p50 ×${ratio.sequentialP50}, p99 ×${ratio.sequentialP99}, ` +
        `profiled busy time per task ×${ratio.profiledBusyPerTask}`,
    );
  }
  if (values['profile-worker']) {
    await worker.stop();
    const [file] = (await readdir(workerProfDir)).filter((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error('the worker wrote no .cpuprofile');
    const summary = summarizeProfile(
      JSON.parse(await readFile(join(workerProfDir, file), 'utf8')) as CpuProfile,
    );
    results.worker = { profile: summary };
    lines.push(
      `echo_q worker, whole run: ${summary.busyMs} ms busy; self time by owner:`,
      ...summary.byOwner.slice(0, 15).map((o) => `  ${pct(o.share)}  ${o.owner}`),
      'self time by function:',
      ...summary.byFunction.slice(0, 20).map((f) => `  ${pct(f.share)}  ${f.fn}`),
    );
    if (values.keep)
      await copyFile(join(workerProfDir, file), `bench-results/profile-${values.label}-worker.cpuprofile`);
  }
  const out = writeResult(`profile-${values.label}`, {
    tasks: TOTAL,
    outstanding: OUTSTANDING,
    rounds: ROUNDS,
    ...results,
    ratio,
  });
  lines.push(`written: ${out}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

main()
  .catch((err: unknown) => {
    log(`bench:profile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => teardown.run());
