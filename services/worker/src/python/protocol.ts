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
  /**
   * Two Int32 slots shared with the host. Slot 0 is Pyodide's interrupt buffer: the host writes 2
   * to raise KeyboardInterrupt (soft timeout). Slot 1 is set to 1 by the thread when the run
   * starts, so the time limit does not count the wait for a thread that is still booting.
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
  limit?: 'return';
  error?: { name: string; message: string; traceback?: string };
  output: string[];
  stderr: string[];
  outputTruncated: boolean;
}
