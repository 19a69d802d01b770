// Entry point of the Python sandbox child process (forked by sandbox-client.ts under Node's
// permission model, with an empty environment). It owns the piscina pool of Pyodide threads and
// enforces the time limit and cancellation: a soft interrupt first, then a hard kill of the
// thread, which piscina replaces. It holds no secrets and opens no connections of its own; it
// talks to its parent over the IPC channel only. Must not import the platform's connectors.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PythonResult } from '@neuroagent/contracts';
import { Piscina } from 'piscina';
import { enforceOutputLimits, MAX_ERROR_TEXT_CHARS } from './output-limits.ts';
import { loadLockFile } from './package-source.ts';
import {
  CONTROL_BYTES,
  CONTROL_INTERRUPT,
  CONTROL_STARTED,
  type FromSandbox,
  type PoolStats,
  type SandboxConfig,
  type ThreadReply,
  type ThreadTask,
  type ToSandbox,
} from './protocol.ts';
import { cancelledFailure, failure, mapThreadReply, timeoutFailure } from './result-mapping.ts';

const SOFT_INTERRUPT = 2; // SIGINT: Pyodide raises KeyboardInterrupt at the next bytecode check
const MAX_DISPATCH_ATTEMPTS = 3;
// Long enough for a recycling thread to exit and piscina to route around it.
const REDISPATCH_DELAY_MS = 50;

function send(msg: FromSandbox): void {
  process.send?.(msg);
}

function fatal(message: string): never {
  send({ type: 'fatal', message });
  process.exit(70);
}

const config = JSON.parse(process.argv[2] ?? 'null') as SandboxConfig | null;
if (!config || !process.send)
  fatal('sandbox-host must be forked with its config as argv[2] and an IPC channel');

// The sandbox dies with its parent: an orphaned pool would keep burning CPU with nobody to answer.
process.on('disconnect', () => process.exit(0));

function loadSnapshot(path: string | null): Uint8Array | null {
  if (!path) return null;
  const file = readFileSync(path);
  // One shared copy for every thread, instead of one 30 MB copy each.
  const shared = new Uint8Array(new SharedArrayBuffer(file.byteLength));
  shared.set(file);
  return shared;
}

let pool: Piscina<ThreadTask, ThreadReply>;
const running = new Map<number, { cancel: () => void; flags: Int32Array }>();

/** What the worker's metrics read at scrape time: a run counts as busy once its thread took it. */
function poolStats(): PoolStats {
  let busy = 0;
  for (const run of running.values()) if (Atomics.load(run.flags, CONTROL_STARTED) === 1) busy++;
  return { threads: pool.threads.length, busy, queued: pool.queueSize };
}

async function runOne(id: number, code: string) {
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const flags = new Int32Array(control);
  const abort = new AbortController();
  let timedOut = false;
  let cancelled = false;
  let killed = false;
  let finished = false;
  let redispatches = 0;
  let soft: NodeJS.Timeout | undefined;
  let hard: NodeJS.Timeout | undefined;
  const stop = () => {
    Atomics.store(flags, CONTROL_INTERRUPT, SOFT_INTERRUPT);
    // time.sleep and C loops never see the interrupt: kill the thread after the grace period.
    hard ??= setTimeout(() => {
      killed = true;
      abort.abort(new Error('hard limit'));
    }, config!.killGraceMs);
  };
  const armTimers = () => {
    if (finished) return;
    soft = setTimeout(() => {
      timedOut = true;
      stop();
    }, config!.timeoutMs);
  };
  running.set(id, {
    flags,
    cancel() {
      cancelled = true;
      // A run still waiting for a thread is dropped without ever starting.
      if (Atomics.load(flags, CONTROL_STARTED) === 0) abort.abort(new Error('cancelled'));
      else stop();
    },
  });
  // The clock starts when a thread picks the run up, not while it waits for a replacement thread.
  const started = Atomics.waitAsync(flags, CONTROL_STARTED, 0);
  if (started.async) void started.value.then(armTimers);
  else armTimers();
  try {
    const task: ThreadTask = {
      code,
      control,
      maxOutputBytes: config!.maxOutputBytes,
      maxReturnBytes: config!.maxReturnBytes,
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await pool.run(task, { signal: abort.signal });
        return { reply, timedOut, cancelled, killed, redispatches };
      } catch (err) {
        // A thread that exits between runs (recycling, or an interpreter that failed to load) can
        // take a run that it never started down with it. Nothing ran, so running it again is safe.
        const neverStarted = Atomics.load(flags, CONTROL_STARTED) === 0;
        if (neverStarted && !cancelled && !abort.signal.aborted && attempt < MAX_DISPATCH_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, REDISPATCH_DELAY_MS));
          redispatches++;
          continue;
        }
        return { reply: null, timedOut, cancelled, killed, redispatches, err };
      }
    }
  } finally {
    finished = true;
    running.delete(id);
    clearTimeout(soft);
    clearTimeout(hard);
  }
}

async function handleRun(id: number, code: string): Promise<void> {
  const started = performance.now();
  const { reply, timedOut, cancelled, killed, redispatches, err } = await runOne(id, code);
  let result: PythonResult;
  if (cancelled) result = cancelledFailure(reply?.output, reply?.stderr);
  else if (reply) result = mapThreadReply(reply, timedOut, config!.timeoutMs);
  else if (killed || timedOut) result = timeoutFailure(config!.timeoutMs);
  else {
    const why = (err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_TEXT_CHARS / 2);
    result = failure('internal', {
      name: 'SandboxThreadError',
      message: `the Python thread stopped unexpectedly: ${why}`,
    });
  }
  // The thread shares its interpreter with the user's code: check its report again here.
  const checked = enforceOutputLimits(result, reply?.ok && !cancelled ? reply.artifacts : [], config!);
  send({
    type: 'result',
    id,
    ...checked,
    durationMs: performance.now() - started,
    isolation: reply?.isolation ?? null,
    killed,
    redispatches,
  });
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const lockFile = await loadLockFile(config!.packages, config!.bundledLockPath);
  pool = new Piscina<ThreadTask, ThreadReply>({
    filename: fileURLToPath(new URL('./pyodide-thread.ts', import.meta.url)),
    minThreads: config!.threads,
    maxThreads: config!.threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    // Threads must not block in Atomics.wait between tasks: Pyodide's event loop runs on that thread.
    atomics: 'disabled',
    env: {},
    workerData: {
      indexURL: config!.indexURL,
      snapshot: loadSnapshot(config!.snapshotPath),
      snapshotPackages: config!.snapshotPackages,
      lockFile,
      packages: config!.packages,
      packageCacheDir: config!.packageCacheDir,
      installTimeoutMs: config!.installTimeoutMs,
      memoryCapBytes: config!.memoryCapBytes,
      recycleAfterRuns: config!.recycleAfterRuns,
      reuseInterpreter: config!.reuseInterpreter,
      isolation: config!.isolation,
      resetMaxGrowthBytes: config!.resetMaxGrowthBytes,
      spareInterpreter: config!.spareInterpreter,
      allowNetwork: config!.allowNetwork,
      artifacts: config!.artifacts,
    },
  });
  // An unhandled 'error' on the pool would kill this process; a dead thread is replaced instead.
  pool.on('error', (e: Error) => process.stderr.write(`python thread error: ${e.message}\n`));

  process.on('message', (msg: ToSandbox) => {
    if (msg.type === 'run') void handleRun(msg.id, msg.code);
    else if (msg.type === 'cancel') running.get(msg.id)?.cancel();
    else if (msg.type === 'stats') send({ type: 'stats', id: msg.id, pool: poolStats() });
    else if (msg.type === 'shutdown') void pool.destroy().finally(() => process.exit(0));
  });

  // Warm every thread before announcing readiness, so the first task does not pay for the load.
  await Promise.all(
    Array.from({ length: config!.threads }, () =>
      pool.run({
        warmup: true,
        code: '',
        control: new SharedArrayBuffer(CONTROL_BYTES),
        maxOutputBytes: 0,
        maxReturnBytes: 0,
      }),
    ),
  );
  send({ type: 'ready', threads: config!.threads, ms: Math.round(performance.now() - t0) });
}

main().catch((err: unknown) =>
  fatal(`python sandbox failed to start: ${err instanceof Error ? err.message : String(err)}`),
);
