// The backing servers `npm start` can run itself when none answers: nats-server (with JetStream)
// and redis-server, as child processes with their data under a directory of ours. Nothing here
// decides *whether* to start one; that is dependencies.ts.
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { describeExit, exited, hasExited, spawnTagged, stopChild } from './child-process.ts';
import { DevError } from './dev-error.ts';
import type { TagColour } from './prefix-lines.ts';
import { waitForPort } from './probe.ts';

export interface LocalServiceSpec {
  name: string;
  label: string;
  binary: string;
  debianPackage: string;
  defaultUrl: string;
  defaultPort: number;
  colour: TagColour;
  args(host: string, port: number, dataDir: string): string[];
}

export const NATS_SERVER: LocalServiceSpec = {
  name: 'nats',
  label: 'NATS',
  binary: 'nats-server',
  debianPackage: 'nats-server',
  defaultUrl: 'nats://127.0.0.1:4222',
  defaultPort: 4222,
  colour: 'green',
  // -js: the gateway and the worker need JetStream; -sd keeps its file store under our data dir.
  args: (host, port, dataDir) => ['-a', host, '-p', String(port), '-js', '-sd', dataDir],
};

export const REDIS_SERVER: LocalServiceSpec = {
  name: 'redis',
  label: 'Redis',
  binary: 'redis-server',
  debianPackage: 'redis-server',
  defaultUrl: 'redis://127.0.0.1:6379/0',
  defaultPort: 6379,
  colour: 'red',
  // A dev Redis holds results with TTLs only: no snapshots or AOF to write or to reload stale.
  args: (host, port, dataDir) => [
    '--bind',
    host,
    '--port',
    String(port),
    '--dir',
    dataDir,
    '--save',
    '',
    '--appendonly',
    'no',
  ],
};

/** Absolute path of an executable named `binary` in a PATH-style list, or undefined. */
export function findOnPath(binary: string, pathList: string | undefined): string | undefined {
  for (const dir of (pathList ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here (or not executable): try the next directory.
    }
  }
  return undefined;
}

export interface LocalService {
  spec: LocalServiceSpec;
  child: ChildProcess;
  stop(graceMs: number): Promise<void>;
}

export interface StartOptions {
  /** Executable to run; usually findOnPath(spec.binary, PATH). */
  command: string;
  host: string;
  port: number;
  dataDir: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** How long the server may take to accept connections. */
  timeoutMs: number;
}

/**
 * Starts the server and resolves once its port accepts connections. Rejects with DevError
 * `dependency_start_failed` (after stopping the child) if it exits first or the timeout passes;
 * its own output, already tagged on our stderr, says why.
 */
export async function startLocalService(
  spec: LocalServiceSpec,
  options: StartOptions,
): Promise<LocalService> {
  await mkdir(options.dataDir, { recursive: true });
  const child = spawnTagged({
    name: spec.name,
    colour: spec.colour,
    command: options.command,
    args: spec.args(options.host, options.port, options.dataDir),
    cwd: options.cwd,
    env: options.env,
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  const target = { host: options.host, port: options.port };
  const ready = await waitForPort(
    target,
    options.timeoutMs,
    () => spawnError !== undefined || hasExited(child),
  );
  if (!ready) {
    const why = hasExited(child)
      ? `exited (${describeExit(await exited(child))})`
      : `did not accept connections within ${options.timeoutMs} ms`;
    await stopChild(child, 2000);
    throw new DevError(
      'dependency_start_failed',
      `${spec.binary} ${why} on ${options.host}:${options.port}; see its [${spec.name}] lines above`,
      { cause: spawnError },
    );
  }
  return { spec, child, stop: (graceMs) => stopChild(child, graceMs) };
}
