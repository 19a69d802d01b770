// The worker's handle on its Python sandbox: a child process (sandbox-host.ts) with an empty
// environment and no connections, restarted when it dies. Runs in flight when it dies fail with
// a retryable error, so the consumer hands the task back to JetStream instead of losing it.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PythonResult } from '@neuroagent/contracts';
import { InfrastructureError, type Logger } from '@neuroagent/platform';
import type { FromSandbox, SandboxLimits, ToSandbox } from './protocol.ts';

const HOST_PATH = fileURLToPath(new URL('./sandbox-host.ts', import.meta.url));

export interface PythonSandboxOptions {
  limits: SandboxLimits;
  restartDelayMs: number;
  log: Logger;
}

export interface PythonSandbox {
  /** Resolves once every thread has loaded Pyodide. */
  start(): Promise<void>;
  run(code: string): Promise<PythonResult>;
  close(): Promise<void>;
  /** The sandbox process id, for tests and logs. */
  pid(): number | undefined;
}

interface Pending {
  resolve: (r: PythonResult) => void;
  reject: (e: Error) => void;
}

export function createPythonSandbox(opts: PythonSandboxOptions): PythonSandbox {
  const { log } = opts;
  let child: ChildProcess | null = null;
  let ready: Promise<void> | null = null;
  let closing = false;
  let nextId = 1;
  const pending = new Map<number, Pending>();

  function spawnHost(): Promise<void> {
    const proc = fork(HOST_PATH, [JSON.stringify(opts.limits)], {
      // No secrets reach the sandbox: it gets an empty environment and none of our flags.
      env: {},
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    child = proc;
    return new Promise<void>((resolve, reject) => {
      let isReady = false;
      proc.on('message', (msg: FromSandbox) => {
        if (msg.type === 'ready') {
          isReady = true;
          log.info({ pid: proc.pid, threads: msg.threads, ms: msg.ms }, 'python sandbox ready');
          resolve();
        } else if (msg.type === 'result') {
          const p = pending.get(msg.id);
          pending.delete(msg.id);
          p?.resolve(msg.result);
        } else if (msg.type === 'fatal') {
          log.error({ pid: proc.pid, message: msg.message }, 'python sandbox reported a fatal error');
        }
      });
      proc.on('exit', (code, signal) => {
        if (child === proc) child = null;
        const err = new InfrastructureError(
          'sandbox_crashed',
          `python sandbox exited (code ${code}, signal ${signal})`,
        );
        for (const [id, p] of pending) {
          pending.delete(id);
          p.reject(err);
        }
        if (closing) return;
        log.error({ pid: proc.pid, code, signal }, 'python sandbox exited: restarting');
        if (!isReady) reject(err);
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
    async run(code) {
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
      return new Promise<PythonResult>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const msg: ToSandbox = { type: 'run', id, code };
        proc.send(msg, (err) => {
          if (!err) return;
          pending.delete(id);
          reject(
            new InfrastructureError('sandbox_unavailable', 'could not reach the python sandbox', {
              cause: err,
            }),
          );
        });
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
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
