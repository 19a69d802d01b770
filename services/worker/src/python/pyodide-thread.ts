// One piscina worker thread. It installs the JS-level guards, then serves runs, each on a pristine
// hardened interpreter. In reset mode (the default) the thread restores one interpreter from the
// shared snapshot, captures its image, and after every run returns it to that image in place
// (inplace-reset.ts, ~3 ms); a run that leaves state a reset cannot undo gets a replacement: the
// spare restored ahead, a fresh restore, or a new thread. In restore mode every run gets a fresh
// restore. The next interpreter is prepared right after a run's reply is posted, so it is usually
// ready before the next run arrives. After recycleAfterRuns runs the thread exits and piscina
// starts a clean one.
// It must load without top-level await: piscina loads it with require(), and falling back to its
// ESM loader would need `new Function`, which the sandbox forbids.
import { workerData } from 'node:worker_threads';
import { type FallbackReason, pyodideAborted, ResetUnsupportedError } from './inplace-reset.ts';
import { createInterpreter, type Interpreter } from './interpreter.ts';
import { OutputCapture } from './output-capture.ts';
import { findOutputBreach } from './output-limits.ts';
import {
  type Artifact,
  CONTROL_STARTED,
  type IsolationReport,
  type ThreadConfig,
  type ThreadReply,
  type ThreadTask,
} from './protocol.ts';
import {
  blockChildProcesses,
  blockSockets,
  cachePyodideModule,
  capWasmMemory,
  gateRunCallbacks,
  hostTimers,
  outsideRuns,
  serveConstantsBinding,
} from './thread-guards.ts';

const config = workerData as ThreadConfig;

serveConstantsBinding();
blockChildProcesses();
if (!config.allowNetwork) blockSockets(config.indexURL);
capWasmMemory(config.memoryCapBytes);
const runGate = gateRunCallbacks();

const importToPackage = new Map<string, string>();
for (const [name, pkg] of Object.entries(
  (config.lockFile as { packages?: Record<string, { imports?: string[] }> })?.packages ?? {},
)) {
  for (const imp of pkg.imports ?? []) importToPackage.set(imp, name);
}

const mode: IsolationReport['mode'] = config.reuseInterpreter ? 'reuse' : config.isolation;

let runs = 0;
let recycle = false;
let exiting = false;
/** How the interpreter that `next` resolves to was prepared, reported with the run that uses it. */
let prepared: Omit<IsolationReport, 'mode' | 'fallback'> = { prepared: 'new_thread' };
// A failed compile only costs speed: every restore then compiles the module itself.
let next: Promise<Interpreter> = cachePyodideModule(config.indexURL)
  .catch(() => {})
  .then(fresh);
let spare: Promise<Interpreter> | null = null;
if (mode === 'reset' && config.spareInterpreter) void next.then(restoreSpare, () => {});

function fresh(): Promise<Interpreter> {
  const p = createInterpreter({
    indexURL: config.indexURL,
    snapshot: config.snapshot,
    snapshotPackages: config.snapshotPackages,
    lockFile: config.lockFile,
    packages: config.packages,
    packageCacheDir: config.packageCacheDir,
  }).then((interp) => {
    // Refuses, before any run, a Pyodide whose internals the reset does not know.
    if (mode === 'reset') interp.captureImage();
    return interp;
  });
  p.catch((err: unknown) => {
    // Isolation that cannot be guaranteed must stop the pool, not degrade: the warm-up run
    // reports this error and the sandbox refuses to start.
    if (err instanceof ResetUnsupportedError) return;
    // A thread that cannot build an interpreter is useless: let piscina replace it.
    process.stderr.write(`python thread: interpreter failed to load: ${String(err)}\n`);
    process.exit(71);
  });
  return p;
}

/** Resolves once the current reply has been posted: preparing the next interpreter waits for it. */
function afterReply(): Promise<void> {
  return new Promise((resolve) => hostTimers.setImmediate(resolve));
}

function restoreSpare(): void {
  // The spare may still be loading when the next run begins: its callbacks are not that run's.
  spare = afterReply().then(() => outsideRuns(fresh));
  spare.catch(() => {});
}

/** The interpreter after one that cannot be reset: the spare when there is one, else a restore. */
function replacement(): Promise<Interpreter> {
  if (spare) {
    const taken = spare;
    spare = null;
    prepared = { prepared: 'spare' };
    // The next spare is restored once the taken one is ready, not while the next run waits for it.
    void taken.then(restoreSpare, () => {});
    return taken;
  }
  return restoreLater();
}

/** A fresh restore, once this run's reply has been posted. */
function restoreLater(): Promise<Interpreter> {
  prepared = { prepared: 'restore' };
  return afterReply().then(fresh);
}

// This thread's own CPU time: process.cpuUsage() would add whatever the other threads did meanwhile.
const threadCpuUsage = (process as unknown as { threadCpuUsage(prev?: NodeJS.CpuUsage): NodeJS.CpuUsage })
  .threadCpuUsage;

/** Resets in place after the reply is posted; a reset that throws falls back to a replacement. */
function resetLater(interp: Interpreter): Promise<Interpreter> {
  return afterReply().then(() => {
    const cpu = threadCpuUsage();
    try {
      interp.reset();
      const used = threadCpuUsage(cpu);
      prepared = { prepared: 'reset', resetMs: (used.user + used.system) / 1000 };
      return interp;
    } catch (err) {
      process.stderr.write(`python thread: in-place reset failed, restoring instead: ${String(err)}\n`);
      interp.dispose();
      const p = replacement();
      prepared = { ...prepared, resetFailed: true };
      return p;
    }
  });
}

/** Set when a package load outlived its time limit: it may still change the interpreter later. */
let loadInFlight = false;

/** Installs the packages the script imports; returns an install-error message, or null. */
async function installImports(interp: Interpreter, code: string): Promise<string | null> {
  const missing = interp.missingImports(code);
  const wanted = [...new Set(missing.map((m) => importToPackage.get(m)).filter((p): p is string => !!p))];
  if (wanted.length === 0) return null; // unknown modules: Python raises ModuleNotFoundError itself
  if (!config.packages) {
    return `package${wanted.length > 1 ? 's' : ''} ${wanted.join(', ')} not available: no package source is configured (TASKS_PYTHON__PACKAGES_URL)`;
  }
  const errors: string[] = [];
  const load = interp.pyodide.loadPackage(wanted, {
    messageCallback: () => {},
    errorCallback: (msg: string) => errors.push(msg),
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = hostTimers.setTimeout(() => resolve('timeout'), config.installTimeoutMs);
  });
  const outcome = await Promise.race([load.then(() => 'done' as const), timedOut]);
  hostTimers.clearTimeout(timer);
  if (outcome === 'timeout') {
    loadInFlight = true;
    return `installing ${wanted.join(', ')} took longer than ${config.installTimeoutMs} ms (package source ${config.packages.base})`;
  }
  const failed = wanted.filter((p) => !(p in interp.pyodide.loadedPackages));
  if (failed.length === 0) return null;
  return `could not install ${failed.join(', ')} from ${config.packages.base}: ${errors.join('; ').slice(0, 2000) || 'unknown error'}`;
}

function toArtifacts(items: unknown[][]): Artifact[] {
  return items.map(([kind, name, contentType, data]) => ({
    kind: kind as Artifact['kind'],
    name: String(name),
    contentType: String(contentType),
    data: Uint8Array.from(data as Uint8Array),
  }));
}

async function runTask(task: ThreadTask): Promise<ThreadReply> {
  if (task.warmup) {
    await next;
    return { ok: true, output: [], stderr: [], outputTruncated: false, artifacts: [] };
  }
  // A thread on its way out must not start anything: the host dispatches the run again.
  if (exiting) throw new Error('python thread is being recycled');
  const interp = await next;
  const isolation: IsolationReport = { mode, ...prepared };
  loadInFlight = false;
  runGate.begin();
  const { pyodide } = interp;
  const stdout = new OutputCapture(task.maxOutputBytes);
  const stderr = new OutputCapture(task.maxOutputBytes);
  pyodide.setStdout({ batched: (line: string) => stdout.push(line) });
  pyodide.setStderr({ batched: (line: string) => stderr.push(line) });
  pyodide.setInterruptBuffer(new Int32Array(task.control, 0, 1));
  const control = new Int32Array(task.control);
  Atomics.store(control, CONTROL_STARTED, 1);
  Atomics.notify(control, CONTROL_STARTED);
  const limits = {
    maxOutputBytes: task.maxOutputBytes,
    maxReturnBytes: task.maxReturnBytes,
    artifacts: config.artifacts,
  };
  // What the run did to its interpreter; an exception out of Pyodide leaves 'aborted'.
  const outcome: RunOutcome = { interrupted: false, memory: false, aborted: true };
  // Decided once: in reply(), so that the reply says what this run's interpreter becomes, or in
  // `finally` when the run threw before any reply.
  let decided = false;
  const decide = (): FallbackReason | undefined => {
    if (!decided) {
      decided = true;
      const fallback = fallbackAfterRun(interp, outcome);
      if (fallback) isolation.fallback = fallback;
    }
    return isolation.fallback;
  };
  const reply = (fields: Partial<ThreadReply> & { ok: boolean }): ThreadReply => {
    const r: ThreadReply = {
      output: stdout.result(),
      stderr: stderr.result(),
      outputTruncated: stdout.truncated || stderr.truncated,
      artifacts: [],
      ...fields,
    };
    decide();
    r.isolation = isolation;
    const breach = findOutputBreach(r, limits);
    if (breach === null) return r;
    const error = { name: 'OutputLimitError', message: breach };
    return {
      ok: false,
      limit: 'output',
      error,
      output: [],
      stderr: [],
      outputTruncated: false,
      artifacts: [],
      isolation,
    };
  };
  try {
    const installError = await installImports(interp, task.code);
    outcome.aborted = false;
    if (installError) return reply({ ok: false, installError });
    outcome.aborted = true;
    const parsed = await interp.run(task.code, task.maxReturnBytes);
    outcome.aborted = false;
    outcome.interrupted = parsed.interrupted;
    // A heap that hit the cap never shrinks: start the next run in a new thread, not just a new interpreter.
    if (parsed.limit === 'memory') {
      outcome.memory = true;
      recycle = true;
    }
    if (!parsed.ok) return reply(parsed);
    let items: unknown[][] = [];
    let notes: string[] = [];
    try {
      [items, notes] = interp.collect(
        config.artifacts.maxFiles,
        config.artifacts.maxFileBytes,
        config.artifacts.maxTotalBytes,
      );
    } catch (err) {
      // The script may have broken the modules collection relies on; its result still stands.
      notes = [
        `[artifacts not collected: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}]`,
      ];
    }
    for (const note of notes) stderr.push(note);
    return reply({ ...parsed, artifacts: toArtifacts(items) });
  } finally {
    runGate.end();
    runs++;
    const fallback = decide();
    if (recycle || runs >= config.recycleAfterRuns) {
      exiting = true;
      interp.dispose();
      // Exit once this reply has been posted; piscina starts a replacement thread.
      hostTimers.setImmediate(() => process.exit(0));
    } else if (mode === 'reuse' && !fallback) {
      interp.resetForReuse();
      prepared = { prepared: 'reuse' };
      next = Promise.resolve(interp);
    } else if (mode === 'reset' && !fallback) {
      next = resetLater(interp);
    } else {
      interp.dispose();
      next = mode === 'reset' ? replacement() : restoreLater();
    }
  }
}

interface RunOutcome {
  interrupted: boolean;
  memory: boolean;
  aborted: boolean;
}

/**
 * Why this run's interpreter must be replaced rather than reset (or, in reuse mode, kept), or null.
 * Reuse mode keeps only an interpreter whose run ended on its own terms; restore mode replaces
 * every interpreter anyway, and reports nothing.
 */
function fallbackAfterRun(interp: Interpreter, outcome: RunOutcome): FallbackReason | undefined {
  if (mode === 'restore') return undefined;
  if (outcome.aborted || pyodideAborted(interp.pyodide)) return 'aborted';
  if (outcome.memory) return 'memory_error';
  if (outcome.interrupted) return 'interrupted';
  if (loadInFlight) return 'package_load';
  if (mode === 'reuse') return undefined;
  return interp.resetBlocker(config.resetMaxGrowthBytes) ?? undefined;
}

export default next.then(() => runTask);
