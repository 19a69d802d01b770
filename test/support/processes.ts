// Starts the real gateway and worker entry points as child processes for system tests, collects
// their JSON log lines, and waits on them. Nothing is mocked: these are the processes users run.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const WORKER_MAIN = fileURLToPath(new URL('../../services/worker/src/main.ts', import.meta.url));
export const GATEWAY_MAIN = fileURLToPath(new URL('../../services/gateway/src/main.ts', import.meta.url));

export interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

export interface ServiceProcess {
  proc: ChildProcess;
  lines: LogLine[];
  stderr: string[];
  waitForLog(predicate: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export function startService(main: string, env: Record<string, string>): ServiceProcess {
  const proc = spawn(process.execPath, [main], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const stderr: string[] = [];
  const listeners = new Set<() => void>();
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      lines.push({ msg: line });
    }
    for (const l of listeners) l();
  });
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    stderr.push(line);
    if (process.env.TEST_VERBOSE) process.stderr.write(`[child ${proc.pid}] ${line}\n`);
  });
  const exited = once(proc, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  return {
    proc,
    lines,
    stderr,
    exited,
    waitForLog(predicate, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(predicate);
          if (!hit) return;
          cleanup();
          resolve(hit);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${stderr.join('\n')}`),
          );
        }, timeoutMs);
        const onExit = () => {
          cleanup();
          reject(new Error(`process exited while waiting for ${what}; stderr: ${stderr.join('\n')}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
          proc.off('exit', onExit);
        };
        listeners.add(check);
        proc.once('exit', onExit);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

export async function startWorker(
  env: Record<string, string>,
  readyTimeoutMs = 60_000,
): Promise<ServiceProcess> {
  const w = startService(WORKER_MAIN, env);
  await w.waitForLog((l) => l.msg === 'worker ready', readyTimeoutMs, 'worker ready');
  return w;
}

/** `main`: another checkout's gateway entry point (a benchmark's baseline); this one's by default. */
export async function startGateway(
  env: Record<string, string>,
  main = GATEWAY_MAIN,
): Promise<ServiceProcess & { url: string }> {
  const g = startService(main, { ...env, NEUROAGENT_HTTP__PORT: '0', NEUROAGENT_LOG__LEVEL: 'info' });
  const line = await g.waitForLog((l) => l.msg === 'gateway listening', 30_000, 'gateway listening');
  return Object.assign(g, { url: String(line.url) });
}
