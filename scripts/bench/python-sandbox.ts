// `npm run bench:python`: the Python sandbox's figures, in one run on one machine:
//  - cold loadPyodide vs snapshot restore vs a warm run (in this process, no sandbox);
//  - pool readiness (sandbox process start → every thread has an interpreter);
//  - interrupt latency (how long after its deadline a busy loop stops);
//  - print(1+1) through POST /tools/run-python, back to back and paced, and throughput with every
//    thread busy, next to the raw limit (JetStream publish, Redis XADD → XREAD wake).
// Prints tables and writes bench-results/python-sandbox.json.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../../services/platform/src/logger.ts';
import { testNamespace } from '../../services/platform/src/testing.ts';
import { loadWorkerConfig } from '../../services/worker/src/config.ts';
import { createInterpreter } from '../../services/worker/src/python/interpreter.ts';
import { loadLockFile } from '../../services/worker/src/python/package-source.ts';
import { createPythonSandbox } from '../../services/worker/src/python/sandbox-client.ts';
import { buildSandboxConfig } from '../../services/worker/src/python/sandbox-config.ts';
import { BUNDLED_LOCK_FILE, PYODIDE_DIR } from '../../services/worker/src/python/sandbox-paths.ts';
import { measureRawLimit, measureRunPython, measureThroughput, startStack, writeResult } from './lib.ts';
import { summarize } from './stats.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '200' } } });
const n = Number(values.n);
const log = createLogger('bench', 'warn');

async function timeIt<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await fn();
  return [performance.now() - t0, v];
}

// ------------------------------------------------------------------ interpreter start-up
const workerConfig = loadWorkerConfig({ TASKS_PYTHON__THREADS: '2' });
const sandboxConfig = await buildSandboxConfig(workerConfig, log);
const lockFile = await loadLockFile(null, BUNDLED_LOCK_FILE);
const snapshot = new Uint8Array(readFileSync(sandboxConfig.snapshotPath ?? ''));
const base = { indexURL: PYODIDE_DIR, lockFile, packages: null, packageCacheDir: null, snapshotPackages: {} };
const cold: number[] = [];
for (let i = 0; i < 3; i++)
  cold.push((await timeIt(() => createInterpreter({ ...base, snapshot: null })))[0]);
const restore: number[] = [];
for (let i = 0; i < 10; i++) restore.push((await timeIt(() => createInterpreter({ ...base, snapshot })))[0]);
const interp = await createInterpreter({ ...base, snapshot });
for (let i = 0; i < 20; i++) await interp.run('print(1+1)', 1024);
const warm: number[] = [];
for (let i = 0; i < n; i++) warm.push((await timeIt(() => interp.run('print(1+1)', 1024)))[0]);
const startup = {
  coldLoadPyodide: summarize(cold),
  snapshotRestore: summarize(restore),
  warmRun: summarize(warm),
};
console.log('\ninterpreter start-up (ms)');
console.table(startup);
console.log(
  `cold / restore: ${(startup.coldLoadPyodide.p50 / startup.snapshotRestore.p50).toFixed(1)}x; restore / warm run: ${(startup.snapshotRestore.p50 / startup.warmRun.p50).toFixed(0)}x`,
);

// ------------------------------------------------------------------ pool readiness, interrupts
const readiness: number[] = [];
for (let i = 0; i < 3; i++) {
  const sandbox = createPythonSandbox({ config: sandboxConfig, restartDelayMs: 100, log });
  readiness.push((await timeIt(() => sandbox.start()))[0]);
  await sandbox.close();
}
const limitMs = 300;
const interruptSandbox = createPythonSandbox({
  config: { ...sandboxConfig, timeoutMs: limitMs, killGraceMs: 2000 },
  restartDelayMs: 100,
  log,
});
await interruptSandbox.start();
const interrupt: number[] = [];
let hardKills = 0;
for (let i = 0; i < 10; i++) {
  // Let the thread restore its next interpreter first, so only the interrupt itself is measured.
  await new Promise((r) => setTimeout(r, 600));
  const [ms, out] = await timeIt(() => interruptSandbox.run('while True:\n    pass'));
  if (out.result.status !== 'error' || out.result.error_type !== 'timeout')
    throw new Error('expected a timeout');
  if (ms > limitMs + 1500) hardKills++;
  interrupt.push(ms - limitMs);
}
await interruptSandbox.close();
const pool = { readinessMs: summarize(readiness), interruptLatencyMs: summarize(interrupt), hardKills };
console.log('\npool');
console.table({
  'readiness (2 threads)': pool.readinessMs,
  'stop latency after the deadline': pool.interruptLatencyMs,
});

// ------------------------------------------------------------------ product path
async function productPath(label: string, extra: Record<string, string>) {
  const ns = testNamespace('benchpy');
  const stack = await startStack(ns, extra);
  try {
    const backToBack = await measureRunPython(stack.gateway.url, n);
    const paced = await measureRunPython(stack.gateway.url, Math.min(n, 60), 300);
    const throughput = await measureThroughput(stack.gateway.url, 100, workerConfig.python.threads * 2);
    const raw = await measureRawLimit(stack.clients, ns, n);
    const rawP50 = raw.publish.p50 + raw.xaddXreadWake.p50;
    const rows = {
      'print(1+1) back to back': backToBack,
      'print(1+1) paced 300 ms': paced,
      'raw: JetStream publish + PubAck': raw.publish,
      'raw: Redis XADD → XREAD wake': raw.xaddXreadWake,
    };
    console.log(`\nPOST /tools/run-python, ${label} (ms)`);
    console.table(rows);
    console.log(`throughput, ${throughput.concurrency} outstanding: ${throughput.perSecond} runs/s`);
    const ratios = {
      backToBack: Math.round((backToBack.p50 / rawP50) * 10) / 10,
      paced: Math.round((paced.p50 / rawP50) * 10) / 10,
    };
    console.log(
      `p50 / raw limit (${rawP50.toFixed(3)} ms): back to back ${ratios.backToBack}x, paced ${ratios.paced}x`,
    );
    return { rows, throughput, ratios };
  } finally {
    await stack.stop();
  }
}

const fresh = await productPath('fresh interpreter per run (default)', {});
const reuse = await productPath('TASKS_PYTHON__REUSE_INTERPRETER=true', {
  TASKS_PYTHON__REUSE_INTERPRETER: 'true',
});
console.log(`written to ${writeResult('python-sandbox', { n, startup, pool, http: { fresh, reuse } })}`);
