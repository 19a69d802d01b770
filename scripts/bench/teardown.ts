// What every benchmark script does around its run: log to stderr, round figures for the report,
// and undo what it started (servers, processes, temp folders) in reverse order, on success, on
// failure and on Ctrl-C alike. Kept out of lib.ts, which the bench's tests import.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export const log = (msg: string) => process.stderr.write(`${msg}\n`);
export const round = (n: number, d = 3) => Math.round(n * 10 ** d) / 10 ** d;

/**
 * A reader of positive-integer flags: the flag's value, else `small` when `short` is set (a quick
 * or smoke run) and `full` otherwise; anything else exits 64 with the usage.
 */
export function countOption(label: string, usage: string, short: boolean) {
  return (name: string, raw: string | undefined, small: number, full: number): number => {
    const v = raw === undefined ? (short ? small : full) : Number(raw);
    if (!Number.isInteger(v) || v < 1) {
      process.stderr.write(`${label}: --${name} must be a positive integer\n${usage}\n`);
      process.exit(64);
    }
    return v;
  };
}

/** NODE_OPTIONS for the started processes when `--cpu-prof <dir>` was given. */
export function profileEnv(dir: string | undefined): Record<string, string> {
  return dir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` } : {};
}

export interface Teardown {
  /** Registers one undo step; steps run last-registered first. */
  add(step: () => Promise<unknown>): void;
  /** Runs every step once; a failing step is logged and the others still run. */
  run(): Promise<void>;
}

export function createTeardown(label: string): Teardown {
  const steps: (() => Promise<unknown>)[] = [];
  let done = false;
  const run = async () => {
    if (done) return;
    done = true;
    for (const step of steps.reverse()) await step().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${label}: ${sig}, tearing down`);
      void run().finally(() => process.exit(130));
    });
  }
  return { add: (step) => steps.push(step), run };
}

/** SIGTERM to a child the bench forked, SIGKILL if it is still there after `killAfterMs`. */
export async function stopChild(child: ChildProcess, killAfterMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(timer);
}
