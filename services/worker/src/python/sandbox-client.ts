// The worker's handle on its Python sandbox: a child process (sandbox-host.ts) confined by Node's
// permission model, with an empty environment, restarted when it dies. Runs in flight when it
// dies fail with a retryable error, so the consumer hands the task back to JetStream instead of
// losing it. Secrets, connections and S3 uploads stay on this side of the process boundary.
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import type { PythonResult } from '@neuroagent/contracts';
import { InfrastructureError, type Logger } from '@neuroagent/platform';
import { createIsolationStats, type IsolationObserver, type IsolationStats } from './isolation-stats.ts';
import { enforceOutputLimits } from './output-limits.ts';
import type { Artifact, FromSandbox, PoolStats, SandboxConfig, ToSandbox } from './protocol.ts';
import { confinedNodeFlags, PYTHON_DIR } from './sandbox-paths.ts';

/** Told of each interpreter preparation, fallback and restart as it happens (the worker's metrics). */
export interface SandboxObserver extends IsolationObserver {
  /** The sandbox process died after start-up and is being started again. */
  restarted(): void;
}

export interface PythonSandboxOptions {
  config: SandboxConfig;
  restartDelayMs: number;
  log: Logger;
  observer?: SandboxObserver;
  /** How long poolStats() waits for the sandbox's answer. */
  statsTimeoutMs?: number;
}

/** The pool's state: `size` threads configured, the rest as the sandbox reports them. */
export interface PoolReport extends PoolStats {
  size: number;
}

export interface RunOutcome {
  result: PythonResult;
  artifacts: Artifact[];
}

export interface PythonSandbox {
  /** Resolves once every thread has an interpreter ready; rejects if the sandbox cannot start. */
  start(): Promise<void>;
  /** Aborting the signal cancels the run: it ends with error_type "cancelled". */
  run(code: string, signal?: AbortSignal): Promise<RunOutcome>;
  close(): Promise<void>;
  /** The sandbox process id, for tests and logs. */
  pid(): number | undefined;
  /** How runs got their pristine interpreters, and how often the in-place reset fell back. */
  isolationStats(): IsolationStats;
  /**
   * The thread pool right now, asked of the sandbox process; all zero but `size` while it is down,
   * null when it does not answer in time.
   */
  poolStats(): Promise<PoolReport | null>;
}

interface Pending {
  resolve: (r: RunOutcome) => void;
  reject: (e: Error) => void;
}

export function sandboxNodeFlags(config: SandboxConfig): string[] {
  const readable: string[] = [];
  const writable: string[] = [];
  if (config.snapshotPath) readable.push(config.snapshotPath);
  if (config.packages && !config.packages.isUrl) readable.push(config.packages.base);
  if (config.packages?.isUrl && config.packageCacheDir) writable.push(config.packageCacheDir);
  return confinedNodeFlags({ readable, writable });
}

export function createPythonSandbox(opts: PythonSandboxOptions): PythonSandbox {
  const { log } = opts;
  let child: ChildProcess | null = null;
  let ready: Promise<void> | null = null;
  let closing = false;
  let nextId = 1;
  const pending = new Map<number, Pending>();
  const statsWaiters = new Map<number, (pool: PoolStats | null) => void>();
  const isolation = createIsolationStats(opts.observer);
  const size = opts.config.threads;

  function spawnHost(): Promise<void> {
    const proc = fork(join(PYTHON_DIR, 'sandbox-host.ts'), [JSON.stringify(opts.config)], {
      // No secrets reach the sandbox: it gets an empty environment and none of our flags. Both MUST
      // stay explicit: process.execArgv and NODE_OPTIONS would carry a worker's --inspect into the
      // process that runs untrusted code (scripts/test/debug.test.ts checks the live process).
      env: {},
      execArgv: sandboxNodeFlags(opts.config),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    child = proc;
    return new Promise<void>((resolve, reject) => {
      let isReady = false;
      let fatal = '';
      proc.on('message', (msg: FromSandbox) => {
        if (msg.type === 'ready') {
          isReady = true;
          log.info({ pid: proc.pid, threads: msg.threads, ms: msg.ms }, 'python sandbox ready');
          resolve();
        } else if (msg.type === 'result') {
          const p = pending.get(msg.id);
          pending.delete(msg.id);
          const fallback = isolation.record(msg.isolation ?? null, msg.killed === true, msg.redispatches);
          if (fallback) {
            log.info({ pid: proc.pid, fallback }, 'python interpreter replaced instead of reset in place');
          }
          // The sandbox process runs untrusted code: re-check every cap before anything is stored.
          p?.resolve(enforceOutputLimits(msg.result, msg.artifacts, opts.config));
        } else if (msg.type === 'stats') {
          statsWaiters.get(msg.id)?.(checkedPoolStats(msg.pool, size));
        } else if (msg.type === 'fatal') {
          fatal = msg.message;
          log.error({ pid: proc.pid, message: msg.message }, 'python sandbox reported a fatal error');
        }
      });
      proc.on('exit', (code, signal) => {
        if (child === proc) child = null;
        const err = new InfrastructureError(
          'sandbox_crashed',
          `python sandbox exited (code ${code}, signal ${signal})${fatal ? `: ${fatal}` : ''}`,
        );
        for (const [id, p] of pending) {
          pending.delete(id);
          p.reject(err);
        }
        for (const answer of statsWaiters.values()) answer(null);
        if (closing) return;
        if (!isReady) {
          // It never came up: restarting in a loop would not help; the caller decides.
          reject(err);
          return;
        }
        log.error({ pid: proc.pid, code, signal }, 'python sandbox exited: restarting');
        opts.observer?.restarted();
        ready = delay(opts.restartDelayMs).then(() => (closing ? undefined : spawnHost()));
        // A failed restart is retried by the next run(); keep it from being an unhandled rejection.
        ready.catch(() => {});
      });
    });
  }

  return {
    start() {
      ready ??= spawnHost();
      return ready;
    },
    async run(code, signal) {
      if (closing) throw new InfrastructureError('sandbox_closed', 'python sandbox is shutting down');
      ready ??= spawnHost();
      try {
        await ready;
      } catch {
        ready = spawnHost();
        await ready;
      }
      const proc = child;
      if (!proc?.connected)
        throw new InfrastructureError('sandbox_unavailable', 'python sandbox is restarting');
      const id = nextId++;
      const onAbort = () => {
        if (proc.connected) proc.send({ type: 'cancel', id } satisfies ToSandbox);
      };
      return new Promise<RunOutcome>((resolve, reject) => {
        pending.set(id, {
          resolve: (r) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(r);
          },
          reject: (e) => {
            signal?.removeEventListener('abort', onAbort);
            reject(e);
          },
        });
        proc.send({ type: 'run', id, code } satisfies ToSandbox, (err) => {
          if (!err) return;
          pending.delete(id);
          reject(
            new InfrastructureError('sandbox_unavailable', 'could not reach the python sandbox', {
              cause: err,
            }),
          );
        });
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    async close() {
      closing = true;
      const proc = child;
      if (!proc) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      if (proc.connected) proc.send({ type: 'shutdown' } satisfies ToSandbox);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    pid: () => child?.pid,
    isolationStats: () => isolation.snapshot(),
    poolStats() {
      const proc = child;
      if (!proc?.connected) return Promise.resolve({ size, threads: 0, busy: 0, queued: 0 });
      const id = nextId++;
      return new Promise<PoolReport | null>((resolve) => {
        const timer = setTimeout(() => answer(null), opts.statsTimeoutMs ?? 1000);
        const answer = (pool: PoolStats | null) => {
          clearTimeout(timer);
          statsWaiters.delete(id);
          resolve(pool && { size, ...pool });
        };
        statsWaiters.set(id, answer);
        proc.send({ type: 'stats', id } satisfies ToSandbox, (err) => {
          if (err) answer(null);
        });
      });
    },
  };
}

// The report comes from the process that runs untrusted code: only small whole counts are taken
// (the worker never hands it more runs than it has threads), and they feed figures only.
function checkedPoolStats(pool: PoolStats | undefined, size: number): PoolStats | null {
  const limit = Math.max(size, 1) * 4;
  const ok = (n: unknown): n is number =>
    Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= limit;
  if (!pool || !ok(pool.threads) || !ok(pool.busy) || !ok(pool.queued)) return null;
  return { threads: pool.threads, busy: pool.busy, queued: pool.queued };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
