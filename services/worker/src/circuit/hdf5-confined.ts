// Runs one HDF5 read in a fresh confined child process (hdf5-reader-process.ts): Node's permission
// model with read access to the circuit folder and the reader's code only, no child processes,
// no addons, an empty environment, a heap cap and a time limit. A hostile nodes file can then
// neither read the worker's files and secrets nor take the worker down.
import { fork } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InfrastructureError, TaskFailedError } from '@neuroagent/platform';
import type { ReaderReply, ReaderRequest } from './hdf5-protocol.ts';

const READER = fileURLToPath(new URL('./hdf5-reader-process.ts', import.meta.url));
const CIRCUIT_SRC_DIR = fileURLToPath(new URL('.', import.meta.url));
const WORKER_PACKAGE_JSON = fileURLToPath(new URL('../../package.json', import.meta.url));
// h5wasm exports no package.json; its folder is three levels above the Node entry (dist/node/).
const H5WASM_DIR = dirname(dirname(dirname(fileURLToPath(import.meta.resolve('h5wasm/node')))));

export interface Hdf5ReaderLimits {
  /** Wall-clock limit of one read, from fork to answer. */
  timeoutMs: number;
  /** The reader's V8 heap cap (`--max-old-space-size`); the Wasm heap has its own 4 GiB ceiling. */
  memoryMb: number;
  /** Most values one dataset may declare. */
  maxElements: number;
}

export const DEFAULT_HDF5_READER_LIMITS: Hdf5ReaderLimits = {
  timeoutMs: 120_000,
  memoryMb: 4096,
  maxElements: 50_000_000,
};

export function readerNodeFlags(readable: string, memoryMb: number): string[] {
  return [
    '--permission',
    `--allow-fs-read=${readable}`,
    `--allow-fs-read=${CIRCUIT_SRC_DIR}`,
    `--allow-fs-read=${H5WASM_DIR}`,
    // Node reads the nearest package.json to learn that these .ts files are ES modules.
    `--allow-fs-read=${WORKER_PACKAGE_JSON}`,
    `--max-old-space-size=${memoryMb}`,
  ];
}

type ReadRequest =
  | { op: 'list'; nodesFile: string; shown: string }
  | { op: 'read'; nodesFile: string; shown: string; population: string };

/** Runs `req` in a new reader that may read `readable` (the nodes file); content problems become TaskFailedError. */
export function readConfined<T>(readable: string, req: ReadRequest, limits: Hdf5ReaderLimits): Promise<T> {
  const full: ReaderRequest = req.op === 'list' ? req : { ...req, maxElements: limits.maxElements };
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const child = fork(READER, [], {
      env: {},
      execArgv: readerNodeFlags(readable, limits.memoryMb),
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fn();
    };
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new TaskFailedError(
              'bad_archive',
              `${req.shown} took longer than ${limits.timeoutMs} ms to read`,
            ),
          ),
        ),
      limits.timeoutMs,
    );
    child.stderr?.resume();
    child.on('message', (msg: ReaderReply) =>
      finish(() => (msg.ok ? resolve(msg.value as T) : reject(new TaskFailedError(msg.code, msg.message)))),
    );
    child.on('error', (err) =>
      finish(() =>
        reject(
          new InfrastructureError('internal', 'The HDF5 reader process failed to start', { cause: err }),
        ),
      ),
    );
    // 'close' comes after the IPC channel has delivered every message, unlike 'exit'.
    child.on('close', (code, signal) =>
      finish(() =>
        reject(
          new TaskFailedError(
            'bad_archive',
            `${req.shown} cannot be read: the HDF5 reader stopped (${signal ?? `exit code ${code}`})`,
          ),
        ),
      ),
    );
    child.send(full);
  });
}
