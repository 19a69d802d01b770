// Child processes of the dev runner: spawn with tagged output, wait for exit, stop with a grace
// period. Every child runs in its own process group (detached), so a Ctrl-C in the terminal reaches
// the runner only and the runner decides the stop order. The price: children outlive a runner that
// dies without running its exit handler, so `killAllNow()` must be wired to process 'exit'.
import { type ChildProcess, spawn } from 'node:child_process';
import { formatTag, prefixLines, type TagColour } from './prefix-lines.ts';

export interface SpawnTaggedOptions {
  name: string;
  colour: TagColour;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** How each stdout line is shown (e.g. pretty-printed logs); as is when absent. */
  format?: (line: string) => string[];
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// Children that may still be running; killAllNow() is the last resort on exit.
const live = new Set<ChildProcess>();

/** Spawns a process whose stdout and stderr lines reach ours behind `[name]`. */
export function spawnTagged(options: SpawnTaggedOptions): ChildProcess {
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A failed spawn (ENOENT) has no pid and may never emit 'exit'.
  child.once('error', () => {
    if (child.pid === undefined) live.delete(child);
  });
  void prefixLines(
    child.stdout!,
    formatTag(options.name, options.colour, process.stdout),
    process.stdout,
    options.format,
  );
  void prefixLines(child.stderr!, formatTag(options.name, options.colour, process.stderr), process.stderr);
  return child;
}

export function hasExited(child: ChildProcess): boolean {
  return (
    child.exitCode !== null || child.signalCode !== null || (child.pid === undefined && !live.has(child))
  );
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<ExitStatus> {
  if (hasExited(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => {
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
}

export function describeExit(status: ExitStatus): string {
  if (status.signal !== null) return `killed by ${status.signal}`;
  if (status.code !== null) return `exit code ${status.code}`;
  return 'failed to start';
}

/**
 * SIGTERM to the child itself, so that it shuts down in its own order (the worker stops its
 * sandbox process); after `graceMs`, SIGKILL to its whole group, so that nothing is left behind.
 */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (hasExited(child)) return;
  const done = exited(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => killGroup(child), graceMs);
  try {
    await done;
  } finally {
    clearTimeout(timer);
  }
}

/** Synchronous SIGKILL to every child still running: for process 'exit' and a second Ctrl-C. */
export function killAllNow(): void {
  for (const child of live) killGroup(child);
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    // A negative pid addresses the process group that `detached` created.
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
}
