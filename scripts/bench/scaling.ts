// `npm run bench`, scaling section: the same load through 1 then 2 processes of one service, in
// the same run, so that only the ratio matters. Echo through 1 vs 2 gateway processes (sharing one
// PostgreSQL ledger, as replicas do), and print(1+1) through 1 vs 2 python-worker processes. Each
// run also reports how many cores the processes kept busy: on a 2-core machine the second process
// can only help while the first leaves a core idle.
import { readdirSync, readFileSync } from 'node:fs';
import { cpuPerTask, cpuSnapshot } from './process-cpu.ts';

/**
 * The processes and all their descendants (the python worker runs its Pyodide threads in a
 * sandbox child process, whose CPU its own /proc entry does not include), by name.
 */
export function withDescendants(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  const visit = (name: string, pid: number) => {
    out[name] = pid;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return; // exited
    }
    for (const tid of tasks) {
      let children = '';
      try {
        children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const child of children.split(' ').filter((c) => c.trim() !== ''))
        visit(`${name}/${child}`, Number(child));
    }
  };
  for (const [name, pid] of Object.entries(pids)) if (pid > 0) visit(name, pid);
  return out;
}

import type { HttpClient } from './product-path.ts';

export interface ScalingRun {
  processes: number;
  tasks: number;
  perSecond: number;
  /** CPU of every measured process (services and servers) over wall time: cores kept busy. */
  coresBusy: number;
}

/**
 * `total` calls of `one`, `outstanding` at a time, spread evenly over the clients (one per
 * gateway, or one gateway for all when the workers are what scales).
 */
export async function spreadLoad(
  clients: HttpClient[],
  total: number,
  outstanding: number,
  one: (client: HttpClient) => Promise<unknown>,
  pids: Record<string, number>,
  processes: number,
): Promise<ScalingRun> {
  let next = 0;
  const measured = withDescendants(pids);
  const before = cpuSnapshot(measured);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(outstanding, total) }, async (_, lane) => {
      const client = clients[lane % clients.length] as HttpClient;
      while (next++ < total) await one(client);
    }),
  );
  const ms = performance.now() - t0;
  const after = cpuSnapshot(measured);
  const cpuMsTotal = (cpuPerTask(before, after, total).total ?? 0) * total;
  return {
    processes,
    tasks: total,
    perSecond: Math.round((total / (ms / 1000)) * 10) / 10,
    coresBusy: Math.round((cpuMsTotal / ms) * 100) / 100,
  };
}

export interface ScalingPair {
  one: ScalingRun;
  two: ScalingRun;
  /** two.perSecond / one.perSecond */
  ratio: number;
}

export function pair(one: ScalingRun, two: ScalingRun): ScalingPair {
  return { one, two, ratio: Math.round((two.perSecond / one.perSecond) * 100) / 100 };
}
