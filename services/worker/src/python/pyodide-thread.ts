// One piscina worker thread. It installs the JS-level guards, then serves runs, each on a fresh
// hardened interpreter restored from the shared snapshot; the next interpreter is restored right
// after a run returns, so it is usually ready before the next run arrives. After
// recycleAfterRuns runs the thread exits and piscina starts a clean one (restores leak RSS).
// It must load without top-level await: piscina loads it with require(), and falling back to its
// ESM loader would need `new Function`, which the sandbox forbids.
import { workerData } from 'node:worker_threads';
import { createInterpreter, type Interpreter } from './interpreter.ts';
import { OutputCapture } from './output-capture.ts';
import { findOutputBreach } from './output-limits.ts';
import {
  type Artifact,
  CONTROL_STARTED,
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

let runs = 0;
let recycle = false;
let exiting = false;
// A failed compile only costs speed: every restore then compiles the module itself.
let next: Promise<Interpreter> = cachePyodideModule(config.indexURL)
  .catch(() => {})
  .then(fresh);

function fresh(): Promise<Interpreter> {
  const p = createInterpreter({
    indexURL: config.indexURL,
    snapshot: config.snapshot,
    snapshotPackages: config.snapshotPackages,
    lockFile: config.lockFile,
    packages: config.packages,
    packageCacheDir: config.packageCacheDir,
  });
  // A thread that cannot build an interpreter is useless: let piscina replace it.
  p.catch((err: unknown) => {
    process.stderr.write(`python thread: interpreter failed to load: ${String(err)}\n`);
    process.exit(71);
  });
  return p;
}

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
  const reply = (fields: Partial<ThreadReply> & { ok: boolean }): ThreadReply => {
    const r: ThreadReply = {
      output: stdout.result(),
      stderr: stderr.result(),
      outputTruncated: stdout.truncated || stderr.truncated,
      artifacts: [],
      ...fields,
    };
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
    };
  };
  // Reuse (when configured) only an interpreter whose run ended on its own terms.
  let reusable = false;
  try {
    const installError = await installImports(interp, task.code);
    if (installError) return reply({ ok: false, installError });
    const parsed = await interp.run(task.code, task.maxReturnBytes);
    // A heap that hit the cap never shrinks: start the next run in a new thread, not just a new interpreter.
    if (parsed.limit === 'memory') recycle = true;
    reusable = !parsed.interrupted && parsed.limit === undefined;
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
    if (recycle || runs >= config.recycleAfterRuns) {
      exiting = true;
      interp.dispose();
      // Exit once this reply has been posted; piscina starts a replacement thread.
      hostTimers.setImmediate(() => process.exit(0));
    } else if (config.reuseInterpreter && reusable) {
      interp.resetForReuse();
      next = Promise.resolve(interp);
    } else {
      interp.dispose();
      next = new Promise((resolve) => hostTimers.setImmediate(resolve)).then(fresh);
    }
  }
}

export default next.then(() => runTask);
