// Messages between the worker process and its Python sandbox process (fork IPC, advanced
// serialization so artifact bytes travel as buffers), and between the sandbox host and its Pyodide
// threads. Types and a few constants only.
import type { PythonResult } from '@neuroagent/contracts';
import type { FallbackReason } from './inplace-reset.ts';

/** Where Python may find packages: a directory or a base URL holding pyodide-lock.json. */
export interface PackageSource {
  /** Directory path or http(s) base URL, with a trailing slash. */
  base: string;
  isUrl: boolean;
}

export interface ArtifactLimits {
  maxFiles: number;
  maxFileBytes: number;
  maxTotalBytes: number;
}

/** Everything the sandbox process is told at start (argv[2], JSON). */
export interface SandboxConfig {
  threads: number;
  timeoutMs: number;
  killGraceMs: number;
  maxOutputBytes: number;
  maxReturnBytes: number;
  memoryCapBytes: number;
  recycleAfterRuns: number;
  /** Trusted single-tenant mode: keep an interpreter for the next run (fresh globals only). */
  reuseInterpreter: boolean;
  isolation: IsolationMode;
  resetMaxGrowthBytes: number;
  spareInterpreter: boolean;
  /** A snapshot built by snapshot.ts for this Node and Pyodide; null starts cold. */
  snapshotPath: string | null;
  /** Pyodide's loadedPackages table inside the snapshot (preloads and their dependencies). */
  snapshotPackages: Record<string, string>;
  packages: PackageSource | null;
  /** Where Pyodide caches packages downloaded from a URL source (the sandbox's only writable folder). */
  packageCacheDir: string | null;
  installTimeoutMs: number;
  indexURL: string;
  bundledLockPath: string;
  allowNetwork: boolean;
  artifacts: ArtifactLimits;
}

export interface Artifact {
  kind: 'plotly' | 'matplotlib' | 'file';
  /** Path under /output for files; figure-N for plots. */
  name: string;
  contentType: string;
  data: Uint8Array;
}

export type ToSandbox =
  | { type: 'run'; id: number; code: string }
  | { type: 'cancel'; id: number }
  | { type: 'stats'; id: number }
  | { type: 'shutdown' };

/** The piscina pool of the sandbox right now, as the host sees it (answer to a `stats` request). */
export interface PoolStats {
  /** Threads alive; fewer than configured while a killed or recycled thread is being replaced. */
  threads: number;
  /** Threads running a run (it has started on its thread and has not replied yet). */
  busy: number;
  /** Runs waiting for a thread in piscina's queue. */
  queued: number;
}

export type FromSandbox =
  | { type: 'ready'; threads: number; ms: number }
  | {
      type: 'result';
      id: number;
      result: PythonResult;
      artifacts: Artifact[];
      durationMs: number;
      /** Absent when the thread gave no reply (killed at the time limit, or crashed). */
      isolation: IsolationReport | null;
      /** The thread was killed at the hard time limit: its interpreter is gone with it. */
      killed: boolean;
      /** Times the run was handed to another thread because its own exited before starting it. */
      redispatches?: number;
    }
  | { type: 'stats'; id: number; pool: PoolStats }
  | { type: 'fatal'; message: string };

/** Thread configuration, passed once as piscina workerData. */
export interface ThreadConfig {
  indexURL: string;
  snapshot: Uint8Array | null;
  snapshotPackages: Record<string, string>;
  /** The lock file of the package source (or Pyodide's own, to name missing packages). */
  lockFile: unknown;
  packages: PackageSource | null;
  packageCacheDir: string | null;
  installTimeoutMs: number;
  memoryCapBytes: number;
  recycleAfterRuns: number;
  reuseInterpreter: boolean;
  isolation: IsolationMode;
  resetMaxGrowthBytes: number;
  spareInterpreter: boolean;
  allowNetwork: boolean;
  artifacts: ArtifactLimits;
}

export type IsolationMode = 'reset' | 'restore';

/**
 * How a run's interpreter was made pristine: reset in place, restored fresh, taken from the spare
 * restored ahead, kept (trusted reuse mode), or the first of a new thread.
 */
export const PREPARATIONS = ['reset', 'restore', 'spare', 'reuse', 'new_thread'] as const;
export type Preparation = (typeof PREPARATIONS)[number];

export interface IsolationReport {
  mode: IsolationMode | 'reuse';
  prepared: Preparation;
  /** CPU milliseconds of the in-place reset that prepared this run's interpreter. */
  resetMs?: number;
  /** Set when this run left state a reset cannot undo: its interpreter is replaced, for this reason. */
  fallback?: FallbackReason;
  /** The in-place reset after the previous run threw; this run got a replacement interpreter. */
  resetFailed?: boolean;
}

/** What the host hands a Pyodide thread for one run. */
export interface ThreadTask {
  /** Only wait until the thread has an interpreter ready; run nothing and use nothing up. */
  warmup?: boolean;
  code: string;
  /**
   * Two Int32 slots shared with the host. Slot 0 is Pyodide's interrupt buffer: the host writes 2
   * to raise KeyboardInterrupt (soft timeout, cancel). Slot 1 is set to 1 by the thread when the
   * run starts, so the time limit does not count the wait for a thread that is still booting.
   */
  control: SharedArrayBuffer;
  maxOutputBytes: number;
  maxReturnBytes: number;
}

export const CONTROL_BYTES = 8;
export const CONTROL_INTERRUPT = 0;
export const CONTROL_STARTED = 1;

export interface ThreadReply {
  ok: boolean;
  value?: unknown;
  interrupted?: boolean;
  /**
   * Set when the run hit a limit: the return value's size, the Wasm memory cap, or any other cap
   * on what comes back, found broken when the thread re-checked the report (output-limits.ts).
   */
  limit?: 'return' | 'memory' | 'output';
  /** Set when a package could not be installed; the run never started. */
  installError?: string;
  error?: { name: string; message: string; traceback?: string };
  output: string[];
  stderr: string[];
  outputTruncated: boolean;
  artifacts: Artifact[];
  isolation?: IsolationReport;
}
