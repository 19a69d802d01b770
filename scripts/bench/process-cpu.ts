// CPU time and resident memory of a process, read from /proc: utime + stime of /proc/<pid>/stat
// (clock ticks, summed over every thread of the process) converted to ms with the kernel's
// CLK_TCK, and VmRSS from /proc/<pid>/status. Linux only, like the servers the bench runs.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcTicks {
  utime: number;
  stime: number;
}

/**
 * utime and stime (fields 14 and 15) of a /proc/<pid>/stat line. The command name (field 2) is in
 * parentheses and may itself contain spaces or parentheses, so fields are counted after the LAST ')'.
 */
export function parseProcStat(text: string): ProcTicks {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line: no ")"');
  // After ")": field 3 (state) is index 0, so field n is index n - 3.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error('not a /proc/<pid>/stat line: utime/stime missing');
  }
  return { utime, stime };
}

/** VmRSS of a /proc/<pid>/status text, in kB. */
export function parseVmRssKb(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(text);
  if (!m) throw new Error('no VmRSS line in /proc/<pid>/status');
  return Number(m[1]);
}

export function ticksToMs(ticks: ProcTicks, clockTicks: number): number {
  return ((ticks.utime + ticks.stime) * 1000) / clockTicks;
}

let clk: number | undefined;

/** Clock ticks per second (`getconf CLK_TCK`, almost always 100). */
export function clockTicks(): number {
  if (clk === undefined) {
    const out = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    clk = Number.isInteger(out) && out > 0 ? out : 100;
  }
  return clk;
}

/** CPU time (user + system) the process has used so far, in ms. */
export function processCpuMs(pid: number): number {
  return ticksToMs(parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8')), clockTicks());
}

export function processRssKb(pid: number): number {
  return parseVmRssKb(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** CPU ms of each named process, read now. */
export function cpuSnapshot(pids: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuMs(pid)]));
}

/** CPU ms per task of each process between two snapshots, plus their sum as `total`. */
export function cpuPerTask(
  before: Record<string, number>,
  after: Record<string, number>,
  tasks: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const [name, start] of Object.entries(before)) {
    const used = (after[name] ?? start) - start;
    out[name] = round3(used / tasks);
    total += used;
  }
  out.total = round3(total / tasks);
  return out;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
