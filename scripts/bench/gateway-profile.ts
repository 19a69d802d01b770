// `npm run bench:profile [-- --total 20000 --outstanding 100 --label before --keep]`: where the
// gateway's CPU goes on the no-op path. The echo task through POST /tasks?wait= on the product's
// gateway (auth, rate limit, SQLite ledger on, as in `npm run bench`), against the bench's own
// nats-server and redis-server and one echo_q worker, in two passes over the same load:
//   1. unprofiled: throughput and the gateway's CPU per task (from /proc);
//   2. under `--cpu-prof`: the V8 profile, reduced to self time per owner and per function.
// Profiling slows the gateway, so pass 2's figures are shares, never compared with pass 1's.
// Writes bench-results/profile-<label>.json, and the .cpuprofile too with --keep (open it in
// Chrome DevTools).
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { signDevToken } from '../../services/gateway/src/auth/dev-token.ts';
import { testNamespace } from '../../services/platform/src/testing.ts';
import { startPrivateNats, startPrivateRedis } from '../../test/support/private-servers.ts';
import { startGateway, startWorker } from '../../test/support/processes.ts';
import { type CpuProfile, summarizeProfile } from './cpu-profile.ts';
import { writeResult } from './lib.ts';
import { cpuPerTask, cpuSnapshot } from './process-cpu.ts';
import { echoWorkerEnv, productGatewayEnv } from './product-env.ts';
import { concurrent, echoOnce, httpClient } from './product-path.ts';
import { countOption, createTeardown, log, profileEnv, round } from './teardown.ts';

const USAGE = `usage: npm run bench:profile -- [options]
  --total <k>        tasks per pass (default 20000)
  --outstanding <k>  tasks in flight (default 100)
  --label <name>     names the result: bench-results/profile-<name>.json (default "gateway")
  --keep             also copy the .cpuprofile next to the JSON
  --quick            a smoke run (tiny counts)
  --help`;

const { values } = parseArgs({
  options: {
    total: { type: 'string' },
    outstanding: { type: 'string' },
    label: { type: 'string', default: 'gateway' },
    keep: { type: 'boolean', default: false },
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
const WARMUP = Math.min(TOTAL, values.quick ? 50 : 2000);
const teardown = createTeardown('bench:profile');
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

async function main(): Promise<void> {
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
  const worker = await startWorker(echoWorkerEnv(ns, servers));
  teardown.add(() => worker.stop());

  const pass = async (n: number, extra: Record<string, string>) => {
    const gateway = await startGateway(
      productGatewayEnv(ns, servers, {
        jwtSecret: secret,
        dbUrl: `sqlite:${join(dir, `ledger-${n}.sqlite`)}`,
        extra,
      }),
    );
    const client = httpClient(gateway.url, token, OUTSTANDING);
    try {
      await concurrent(WARMUP, OUTSTANDING, () => echoOnce(client));
      const pid = gateway.proc.pid ?? 0;
      const before = cpuSnapshot({ gateway: pid });
      const fromUs = monotonicUs();
      const run = await concurrent(TOTAL, OUTSTANDING, () => echoOnce(client));
      const window = { fromUs, toUs: monotonicUs() };
      const cpu = cpuPerTask(before, cpuSnapshot({ gateway: pid }), TOTAL);
      return { perSecond: round(run.perSecond, 1), gatewayCpuMsPerTask: cpu.gateway ?? Number.NaN, window };
    } finally {
      client.close();
      await gateway.stop();
    }
  };

  log(
    `bench:profile: pass 1, unprofiled: ${WARMUP} warm-up, then ${TOTAL} tasks, ${OUTSTANDING} outstanding`,
  );
  const plain = await pass(1, {});
  log(`bench:profile: ${plain.perSecond}/s, gateway CPU ${plain.gatewayCpuMsPerTask} ms per task`);
  const profDir = join(dir, 'prof');
  log('bench:profile: pass 2, the same load under --cpu-prof');
  const profiled = await pass(2, profileEnv(profDir));
  const files = (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length !== 1) throw new Error(`expected one gateway .cpuprofile, found ${files.length}`);
  const file = join(profDir, files[0] as string);
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  if (profile.startTime > profiled.window.fromUs || profile.endTime < profiled.window.toUs) {
    throw new Error('the profile does not cover the measured window: its clock is not the monotonic one');
  }
  const summary = summarizeProfile(profile, 30, profiled.window);
  const out = writeResult(`profile-${values.label}`, {
    tasks: TOTAL,
    outstanding: OUTSTANDING,
    unprofiled: { perSecond: plain.perSecond, gatewayCpuMsPerTask: plain.gatewayCpuMsPerTask },
    profiled: { perSecond: profiled.perSecond },
    profile: summary,
  });
  if (values.keep) await copyFile(file, out.replace(/\.json$/, '.cpuprofile'));
  const pct = (s: number) => `${(s * 100).toFixed(1)}%`.padStart(6);
  const lines = [
    `gateway: ${plain.perSecond}/s, ${plain.gatewayCpuMsPerTask} ms CPU per task (unprofiled)`,
    `profile of the measured window: ${summary.busyMs} ms busy, ${summary.idleMs} ms idle, ` +
      `${round(summary.busyMs / TOTAL)} ms per task; self time by owner:`,
    ...summary.byOwner.slice(0, 20).map((o) => `  ${pct(o.share)}  ${o.owner}`),
    'self time by function:',
    ...summary.byFunction.slice(0, 30).map((f) => `  ${pct(f.share)}  ${f.fn}`),
    `written: ${out}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main()
  .catch((err: unknown) => {
    log(`bench:profile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => teardown.run());
