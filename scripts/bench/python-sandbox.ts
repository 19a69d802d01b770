// `npm run bench:python`: the Python sandbox's figures, in one run on one machine:
//  - cold loadPyodide vs snapshot restore vs a warm run (in this process, no sandbox);
//  - CPU per run for each way of making an interpreter pristine: in-place reset, fresh restore,
//    trusted reuse, side by side (in this process);
//  - pool readiness (sandbox process start → every thread has an interpreter);
//  - interrupt latency (how long after its deadline a busy loop stops);
//  - how often each in-place reset fallback is taken in a mixed workload, and the CPU of each reset
//    as the threads measure it;
//  - print(1+1) through POST /tools/run-python, back to back and paced, and throughput with every
//    thread busy, for reset, restore and reuse, next to the raw limit (JetStream publish, Redis
//    XADD → XREAD wake).
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

// ------------------------------------------------------------------ CPU per run, by isolation mode
function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}
const perRun = Math.max(20, Math.min(n, 200));
const resetCpu: number[] = [];
const resetOnlyCpu: number[] = [];
const resettable = await createInterpreter({ ...base, snapshot });
resettable.captureImage();
for (let i = 0; i < perRun + 10; i++) {
  const t = process.cpuUsage();
  await resettable.run('print(1+1)', 1024);
  const r = process.cpuUsage();
  resettable.reset();
  if (i >= 10) {
    resetOnlyCpu.push(cpuMs(r));
    resetCpu.push(cpuMs(t));
  }
}
const restoreCpu: number[] = [];
for (let i = 0; i < Math.min(perRun, 30); i++) {
  const t = process.cpuUsage();
  const fresh = await createInterpreter({ ...base, snapshot });
  await fresh.run('print(1+1)', 1024);
  restoreCpu.push(cpuMs(t));
  fresh.dispose();
}
const reuseCpu: number[] = [];
for (let i = 0; i < perRun; i++) {
  const t = process.cpuUsage();
  await interp.run('print(1+1)', 1024);
  interp.resetForReuse();
  reuseCpu.push(cpuMs(t));
}
const cpuPerRun = {
  'reset: print(1+1) + reset': summarize(resetCpu),
  'reset: the reset alone': summarize(resetOnlyCpu),
  'restore: restore + print(1+1)': summarize(restoreCpu),
  'reuse: print(1+1) + cleanup': summarize(reuseCpu),
};
console.log('\ninterpreter start-up (ms)');
console.table(startup);
console.log(
  `cold / restore: ${(startup.coldLoadPyodide.p50 / startup.snapshotRestore.p50).toFixed(1)}x; restore / warm run: ${(startup.snapshotRestore.p50 / startup.warmRun.p50).toFixed(0)}x`,
);
console.log('\nCPU per run, by isolation mode (ms of this process, user + system)');
console.table(cpuPerRun);
console.log(
  `restore / reset: ${(cpuPerRun['restore: restore + print(1+1)'].p50 / cpuPerRun['reset: print(1+1) + reset'].p50).toFixed(1)}x; reset / reuse: ${(cpuPerRun['reset: print(1+1) + reset'].p50 / cpuPerRun['reuse: print(1+1) + cleanup'].p50).toFixed(1)}x`,
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

// ------------------------------------------------------------------ fallbacks in a mixed workload
// Mostly ordinary scripts, and a few of each kind that a reset cannot undo; 2 runs outstanding.
const MIX: [weight: number, code: string][] = [
  [80, 'print(1+1)'],
  [6, 'import json\njson.dumps({"a": [1, 2, 3]})'],
  [4, 'raise ValueError("boom")'],
  [3, 'import ctypes\ncb = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 1)\ncb()'],
  [3, 'x = bytearray(96 * 1024 * 1024)\nlen(x)'],
  [2, 'while True:\n    pass'],
  [2, 'import os\nfor i in range(100):\n    open(f"/tmp/{i}", "w").write("x")'],
];
const mixTotal = Math.max(50, Math.min(n * 2, 500));
const mixSandbox = createPythonSandbox({
  config: { ...sandboxConfig, timeoutMs: 200, killGraceMs: 500 },
  restartDelayMs: 100,
  log,
});
await mixSandbox.start();
let seed = 12345;
const nextRandom = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const weights = MIX.reduce((a, [w]) => a + w, 0);
const pickMix = () => {
  let r = nextRandom() * weights;
  for (const [w, code] of MIX) {
    r -= w;
    if (r < 0) return code;
  }
  return MIX[0]?.[1] ?? '1';
};
const mixCodes = Array.from({ length: mixTotal }, pickMix);
let mixNext = 0;
const mixStarted = performance.now();
await Promise.all(
  Array.from({ length: sandboxConfig.threads }, async () => {
    while (mixNext < mixCodes.length) await mixSandbox.run(mixCodes[mixNext++] ?? '1');
  }),
);
const mixMs = performance.now() - mixStarted;
const isolation = mixSandbox.isolationStats();
await mixSandbox.close();
const mixed = {
  runs: isolation.runs,
  seconds: Math.round(mixMs) / 1000,
  prepared: isolation.prepared,
  fallbacks: isolation.fallbacks,
  resetCpuMsInThreads: summarize(isolation.resetMs),
};
console.log(
  `\nmixed workload: ${mixed.runs} runs in ${mixed.seconds} s; how each run's interpreter was prepared`,
);
console.table(mixed.prepared);
console.log('fallbacks taken, by reason');
console.table(mixed.fallbacks);
console.log('CPU per in-place reset, as the threads measure it (ms)');
console.table({ reset: mixed.resetCpuMsInThreads });

// ------------------------------------------------------------------ product path
async function productPath(label: string, extra: Record<string, string>) {
  const ns = testNamespace('benchpy');
  const stack = await startStack(ns, extra);
  try {
    const backToBack = await measureRunPython(stack.gateway.url, n);
    const paced = await measureRunPython(stack.gateway.url, Math.min(n, 60), 300);
    const throughput = await measureThroughput(
      stack.gateway.url,
      extra.TASKS_PYTHON__ISOLATION === 'restore' ? 100 : 400,
      workerConfig.python.threads * 2,
    );
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

const reset = await productPath('in-place reset (default)', {});
const restored = await productPath('TASKS_PYTHON__ISOLATION=restore', { TASKS_PYTHON__ISOLATION: 'restore' });
const reuse = await productPath('TASKS_PYTHON__REUSE_INTERPRETER=true', {
  TASKS_PYTHON__REUSE_INTERPRETER: 'true',
});
const vsReuse = Math.round((reuse.throughput.perSecond / reset.throughput.perSecond) * 100) / 100;
const vsRestore = Math.round((reset.throughput.perSecond / restored.throughput.perSecond) * 10) / 10;
console.log(
  `\nthroughput: reset ${reset.throughput.perSecond}/s, restore ${restored.throughput.perSecond}/s (reset ${vsRestore}x), reuse ${reuse.throughput.perSecond}/s (reuse / reset ${vsReuse}x)`,
);
console.log(
  `written to ${writeResult('python-sandbox', {
    n,
    startup,
    cpuPerRun,
    pool,
    mixed,
    http: { reset, restore: restored, reuse },
    ratios: { throughputReuseOverReset: vsReuse, throughputResetOverRestore: vsRestore },
  })}`,
);
