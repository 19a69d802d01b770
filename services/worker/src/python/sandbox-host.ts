// Entry point of the Python sandbox child process (forked by sandbox-client.ts). It owns the
// piscina pool of Pyodide threads and enforces the time limit: a soft interrupt first, then a hard
// kill of the thread, which piscina replaces. It holds no secrets and opens no connections; it
// talks to its parent over the IPC channel only. Must not import the platform's connectors.
import { fileURLToPath } from 'node:url';
import type { PythonResult } from '@neuroagent/contracts';
import { Piscina } from 'piscina';
import {
  CONTROL_BYTES,
  CONTROL_INTERRUPT,
  CONTROL_STARTED,
  type FromSandbox,
  type SandboxLimits,
  type ThreadReply,
  type ThreadTask,
  type ToSandbox,
} from './protocol.ts';
import { failure, mapThreadReply, timeoutFailure } from './result-mapping.ts';

const SOFT_INTERRUPT = 2; // SIGINT: Pyodide raises KeyboardInterrupt at the next bytecode check

function send(msg: FromSandbox): void {
  process.send?.(msg);
}

function fatal(message: string): never {
  send({ type: 'fatal', message });
  process.exit(70);
}

const limits = JSON.parse(process.argv[2] ?? 'null') as SandboxLimits | null;
if (!limits || !process.send)
  fatal('sandbox-host must be forked with its limits as argv[2] and an IPC channel');

// The sandbox dies with its parent: an orphaned pool would keep burning CPU with nobody to answer.
process.on('disconnect', () => process.exit(0));

const pool = new Piscina<ThreadTask, ThreadReply>({
  filename: fileURLToPath(new URL('./pyodide-thread.ts', import.meta.url)),
  minThreads: limits.threads,
  maxThreads: limits.threads,
  idleTimeout: Number.POSITIVE_INFINITY,
  // Threads must not block in Atomics.wait between tasks: Pyodide's event loop runs on that thread.
  atomics: 'disabled',
  env: {},
});
// An unhandled 'error' on the pool would kill this process; a dead thread is replaced instead.
pool.on('error', (err: Error) => process.stderr.write(`python thread error: ${err.message}\n`));

async function runOne(
  code: string,
): Promise<{ result: ThreadReply | null; timedOut: boolean; killed: boolean; err?: unknown }> {
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const flags = new Int32Array(control);
  const abort = new AbortController();
  let timedOut = false;
  let killed = false;
  let finished = false;
  let soft: NodeJS.Timeout | undefined;
  let hard: NodeJS.Timeout | undefined;
  const armTimers = () => {
    if (finished) return;
    soft = setTimeout(() => {
      timedOut = true;
      Atomics.store(flags, CONTROL_INTERRUPT, SOFT_INTERRUPT);
      // time.sleep and C loops never see the interrupt: kill the thread after the grace period.
      hard = setTimeout(() => {
        killed = true;
        abort.abort(new Error('hard time limit'));
      }, limits!.killGraceMs);
    }, limits!.timeoutMs);
  };
  // The clock starts when a thread picks the run up, not while it waits for a replacement thread.
  const started = Atomics.waitAsync(flags, CONTROL_STARTED, 0);
  if (started.async) void started.value.then(armTimers);
  else armTimers();
  try {
    const task: ThreadTask = {
      code,
      control,
      maxOutputBytes: limits!.maxOutputBytes,
      maxReturnBytes: limits!.maxReturnBytes,
    };
    return { result: await pool.run(task, { signal: abort.signal }), timedOut, killed };
  } catch (err) {
    return { result: null, timedOut, killed, err };
  } finally {
    finished = true;
    clearTimeout(soft);
    clearTimeout(hard);
  }
}

async function handleRun(id: number, code: string): Promise<void> {
  const started = performance.now();
  const { result, timedOut, killed, err } = await runOne(code);
  let mapped: PythonResult;
  if (result) mapped = mapThreadReply(result, timedOut, limits!.timeoutMs);
  else if (killed) mapped = timeoutFailure(limits!.timeoutMs);
  else
    mapped = failure('internal', {
      name: 'SandboxThreadError',
      message: `the Python thread stopped unexpectedly: ${err instanceof Error ? err.message : String(err)}`,
    });
  send({ type: 'result', id, result: mapped, durationMs: performance.now() - started });
}

process.on('message', (msg: ToSandbox) => {
  if (msg.type === 'run') void handleRun(msg.id, msg.code);
  else if (msg.type === 'shutdown') void pool.destroy().finally(() => process.exit(0));
});

// Warm every thread before announcing readiness, so the first task does not pay for loadPyodide.
const t0 = performance.now();
Promise.all(
  Array.from({ length: limits.threads }, () =>
    pool.run({
      code: '0',
      control: new SharedArrayBuffer(CONTROL_BYTES),
      maxOutputBytes: 1024,
      maxReturnBytes: 1024,
    }),
  ),
)
  .then(() => send({ type: 'ready', threads: limits!.threads, ms: Math.round(performance.now() - t0) }))
  .catch((err: unknown) =>
    fatal(`python threads failed to start: ${err instanceof Error ? err.message : String(err)}`),
  );
