// The Pyodide memory snapshot that every sandbox thread restores from (about 0.2 s, against
// 2.5 s for a cold start). Built at first start (or by `npm run build:snapshot`) for exactly this
// Node, V8, Pyodide, architecture, preload list and package source; a snapshot made for anything
// else fails to restore ("table index is out of bounds"), so the identity is checked on every use
// and a mismatch builds a new one beside the old.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '@neuroagent/platform';
import { InfrastructureError } from '@neuroagent/platform';
import type { PackageSource } from './protocol.ts';
import {
  BUNDLED_LOCK_FILE,
  confinedNodeFlags,
  PYODIDE_DIR,
  PYODIDE_VERSION,
  PYTHON_DIR,
} from './sandbox-paths.ts';
import type { SnapshotBuildRequest } from './snapshot-builder.ts';

/** Standard-library modules imported into the snapshot, so scripts do not pay for importing them. */
export const SNAPSHOT_STDLIB = [
  'asyncio',
  'base64',
  'collections',
  'copy',
  'csv',
  'dataclasses',
  'datetime',
  'decimal',
  'enum',
  'fractions',
  'functools',
  'hashlib',
  'heapq',
  'io',
  'itertools',
  'json',
  'math',
  'random',
  're',
  'statistics',
  'string',
  'textwrap',
  'typing',
  'uuid',
];

export interface SnapshotOptions {
  dir: string;
  preload: string[];
  packages: PackageSource | null;
  packageCacheDir: string | null;
  timeoutMs: number;
  log: Logger;
}

export function snapshotIdentity(opts: Pick<SnapshotOptions, 'preload' | 'packages'>) {
  const runner = readFileSync(join(PYTHON_DIR, 'runner.py'));
  return {
    pyodide: PYODIDE_VERSION,
    node: process.versions.node,
    v8: process.versions.v8,
    arch: process.arch,
    preload: [...opts.preload].sort(),
    packages: opts.packages?.base ?? null,
    stdlib: SNAPSHOT_STDLIB,
    runner: createHash('sha256').update(runner).digest('hex').slice(0, 16),
  };
}

export function snapshotPath(dir: string, identity: ReturnType<typeof snapshotIdentity>): string {
  const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 16);
  return join(resolve(dir), `pyodide-${identity.pyodide}-node${identity.node}-${key}.bin`);
}

export interface Snapshot {
  path: string;
  /** Pyodide's loadedPackages table at snapshot time; threads restore it after every restore. */
  loadedPackages: Record<string, string>;
}

/** Returns a snapshot valid for this process, building it first when needed. */
export async function ensureSnapshot(opts: SnapshotOptions): Promise<Snapshot> {
  const identity = snapshotIdentity(opts);
  const path = snapshotPath(opts.dir, identity);
  const metaPath = path.replace(/\.bin$/, '.json');
  if (existsSync(path) && existsSync(metaPath)) {
    try {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as {
        identity?: unknown;
        loadedPackages?: Record<string, string>;
      };
      if (isDeepStrictEqual(meta.identity, identity))
        return { path, loadedPackages: meta.loadedPackages ?? {} };
    } catch {
      // unreadable metadata: rebuild below
    }
    opts.log.warn({ path }, 'snapshot metadata does not match this runtime: rebuilding');
  }
  mkdirSync(resolve(opts.dir), { recursive: true });
  const started = performance.now();
  const { loadedPackages } = await buildSnapshot(opts, path);
  writeFileSync(metaPath, `${JSON.stringify({ identity, loadedPackages }, null, 2)}\n`);
  opts.log.info(
    { path, ms: Math.round(performance.now() - started), preload: opts.preload },
    'pyodide snapshot built',
  );
  return { path, loadedPackages };
}

function buildSnapshot(
  opts: SnapshotOptions,
  outPath: string,
): Promise<{ loadedPackages: Record<string, string> }> {
  const request: SnapshotBuildRequest = {
    indexURL: PYODIDE_DIR,
    bundledLockPath: BUNDLED_LOCK_FILE,
    packages: opts.packages,
    packageCacheDir: opts.packageCacheDir,
    preload: opts.preload,
    stdlib: SNAPSHOT_STDLIB,
    outPath,
  };
  const readable = opts.packages && !opts.packages.isUrl ? [opts.packages.base] : [];
  const writable = [
    resolve(opts.dir),
    ...(opts.packageCacheDir && opts.packages?.isUrl ? [opts.packageCacheDir] : []),
  ];
  const child = fork(join(PYTHON_DIR, 'snapshot-builder.ts'), [JSON.stringify(request)], {
    env: {},
    execArgv: confinedNodeFlags({ readable, writable }),
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    // 'close', not 'exit': stdout and stderr must be read to the end.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && existsSync(outPath)) {
        const last = stdout.trim().split('\n').at(-1) ?? '{}';
        const report = JSON.parse(last) as { loadedPackages?: Record<string, string> };
        return resolvePromise({ loadedPackages: report.loadedPackages ?? {} });
      }
      reject(
        new InfrastructureError(
          'snapshot_build_failed',
          `building the Pyodide snapshot failed (exit ${code ?? signal}${signal === 'SIGKILL' ? `, over ${opts.timeoutMs} ms` : ''}): ${readableTail(stderr)}`,
        ),
      );
    });
  });
}

/** The end of a child's stderr without the one-line minified sources Node prints above a stack. */
export function readableTail(stderr: string, max = 2000): string {
  const lines = stderr.split('\n').filter((l) => l.length <= 500 && !/^\s*\^+\s*$/.test(l));
  return lines.join('\n').trim().slice(-max);
}
