// Messages between the worker process and its Python sandbox process (over the fork IPC channel),
// and between the sandbox host and its Pyodide threads. Types only, plus the limits record.
import type { PythonResult } from '@neuroagent/contracts';

export interface SandboxLimits {
  threads: number;
  timeoutMs: number;
  killGraceMs: number;
  maxOutputBytes: number;
  maxReturnBytes: number;
}

export type ToSandbox = { type: 'run'; id: number; code: string } | { type: 'shutdown' };

export type FromSandbox =
  | { type: 'ready'; threads: number; ms: number }
  | { type: 'result'; id: number; result: PythonResult; durationMs: number }
  | { type: 'fatal'; message: string };

/** What the host hands a Pyodide thread for one run. */
export interface ThreadTask {
  code: string;
  /** Int32 flag shared with the host: writing 2 raises KeyboardInterrupt in Python (soft timeout). */
  interrupt: SharedArrayBuffer;
  maxOutputBytes: number;
  maxReturnBytes: number;
}

export interface ThreadReply {
  ok: boolean;
  value?: unknown;
  interrupted?: boolean;
  limit?: 'return';
  error?: { name: string; message: string; traceback?: string };
  output: string[];
  stderr: string[];
  outputTruncated: boolean;
}
