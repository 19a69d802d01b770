// Returns one Pyodide interpreter to the instant right after it was restored and hardened, in a
// few milliseconds instead of the ~200 ms a fresh restore costs. Every piece of Python state
// (modules, builtins, objects, the allocator, errno, the C stack) lives in the WebAssembly linear
// memory, so writing a copy of that memory back returns Python to a known instant. What lives
// outside it is captured and put back too: the stack pointer, the JS-reference (hiwire) table,
// Emscripten's in-memory file system and its open streams, cwd, ENV and Pyodide's
// loaded-packages table. State that no reset can undo (a grown function table, a loaded native
// library, an interrupted or aborted interpreter, a heap grown too far) is named by
// resetBlocker(); the thread then replaces the interpreter instead (docs/python-sandbox.md).
//
// It relies on private Emscripten and Pyodide internals, so it is bound to one exact Pyodide
// version: checkResetSupport() refuses any other version or any missing piece, loudly, before the
// first run, and the isolation tests (python-reset-isolation.test.ts) pin the behaviour.
import type { PyodideAPI } from 'pyodide';
import { PYODIDE_VERSION } from './sandbox-paths.ts';

/** The only Pyodide version whose internals the reset was written and tested against. */
export const RESET_PYODIDE_VERSION = '314.0.7';

/** Why a run's interpreter was replaced by a restore (or a new thread) instead of being reset. */
export const FALLBACK_REASONS = [
  'table_grew',
  'native_library',
  'interrupted',
  'timed_out',
  'memory_error',
  'heap_growth',
  'package_load',
  'package_installed',
  'aborted',
  'reset_failed',
] as const;
export type FallbackReason = (typeof FALLBACK_REASONS)[number];

/** This Pyodide, or its internals, is not one the in-place reset knows. */
export class ResetUnsupportedError extends Error {
  readonly code = 'reset_unsupported';
  constructor(message: string) {
    super(
      `${message}; the in-place reset cannot guarantee isolation on it (set TASKS_PYTHON__ISOLATION=restore to give every run a freshly restored interpreter instead)`,
    );
    this.name = 'ResetUnsupportedError';
  }
}

interface FSNodeLike {
  [key: string]: unknown;
  mode: number;
  contents?: unknown;
  usedBytes?: number;
}

interface FSStreamLike {
  [key: string]: unknown;
  shared: Record<string, unknown>;
}

interface WasmGlobal {
  value: unknown;
}
interface WasmTable {
  readonly length: number;
  get(index: number): unknown;
}
const Wasm = (
  globalThis as unknown as {
    WebAssembly: { Global: abstract new () => unknown; Table: abstract new () => unknown };
  }
).WebAssembly;

interface EmscriptenModule {
  HEAPU8: Uint8Array;
  ___stack_pointer: WasmGlobal;
  wasmTable: WasmTable;
  freeTableIndexes: number[];
  LDSO: { loadedLibsByName: Record<string, unknown> };
  ENV: Record<string, string>;
  __hiwire_get(index: number): unknown;
  __hiwire_set(index: number, value: unknown): number;
  FS: {
    root: FSNodeLike & { mount: { mounts: unknown[] } };
    streams: (FSStreamLike | undefined)[];
    nameTable: (FSNodeLike | null)[];
    nextInode: number;
    currentPath: string;
    isDir(mode: number): boolean;
    isFile(mode: number): boolean;
  };
}

function moduleOf(pyodide: PyodideAPI): EmscriptenModule {
  return (pyodide as unknown as { _module: EmscriptenModule })._module;
}

/**
 * Refuses a Pyodide whose version or internal shape the reset was not written for. A bump of the
 * pinned version must come with a rerun of the isolation tests, never with a silent loss.
 */
export function checkResetSupport(pyodide: PyodideAPI): void {
  const version = (pyodide as { version?: string }).version;
  if (version !== RESET_PYODIDE_VERSION || PYODIDE_VERSION !== RESET_PYODIDE_VERSION) {
    throw new ResetUnsupportedError(
      `Pyodide ${version ?? 'of unknown version'} is installed (package ${PYODIDE_VERSION}), but the in-place reset is written for exactly ${RESET_PYODIDE_VERSION}`,
    );
  }
  const M = moduleOf(pyodide) as unknown as Record<string, unknown> | undefined;
  const fs = M?.FS as Record<string, unknown> | undefined;
  const missing: string[] = [];
  const want = (ok: boolean, what: string) => {
    if (!ok) missing.push(what);
  };
  want(!!M, 'the Emscripten module (pyodide._module)');
  if (M) {
    want(M.HEAPU8 instanceof Uint8Array, 'HEAPU8');
    want(M.___stack_pointer instanceof Wasm.Global, '__stack_pointer');
    want(M.wasmTable instanceof Wasm.Table, 'the indirect function table');
    want(Array.isArray(M.freeTableIndexes), 'freeTableIndexes');
    want(typeof (M.LDSO as { loadedLibsByName?: unknown })?.loadedLibsByName === 'object', 'LDSO');
    want(typeof M.ENV === 'object' && M.ENV !== null, 'ENV');
    want(typeof M.__hiwire_get === 'function' && typeof M.__hiwire_set === 'function', 'the hiwire table');
    want(!!fs, 'FS');
  }
  if (fs) {
    want(Array.isArray(fs.streams), 'FS.streams');
    want(Array.isArray(fs.nameTable), 'FS.nameTable');
    want(typeof fs.nextInode === 'number', 'FS.nextInode');
    want(typeof fs.currentPath === 'string', 'FS.currentPath');
    want(Array.isArray((fs.root as { mount?: { mounts?: unknown } })?.mount?.mounts), 'FS.root.mount');
  }
  if (missing.length > 0) {
    throw new ResetUnsupportedError(
      `Pyodide ${version}'s internals lack what the reset needs: ${missing.join(', ')}`,
    );
  }
}

interface NodeRecord {
  node: FSNodeLike;
  fields: Record<string, unknown>;
  /** A directory's entries, or a file's bytes (its buffer is never handed out). */
  dir?: Record<string, FSNodeLike>;
  file?: { ref: unknown; bytes: Uint8Array | null };
}

export interface InterpreterImage {
  memory: Uint8Array;
  /** [start, end) byte ranges of the image that hold only zeros: written with fill, not copied. */
  zeroRuns: [number, number][];
  stackPointer: number;
  tableLength: number;
  /** Emscripten's free slots in the function table, and what each held. */
  freeTableSlots: [number, unknown][];
  nativeLibraries: number;
  hiwire: unknown[];
  nodes: NodeRecord[];
  nameTable: (FSNodeLike | null)[];
  streams: { stream: FSStreamLike; fields: Record<string, unknown>; shared: Record<string, unknown> }[];
  streamCount: number;
  mounts: unknown[];
  nextInode: number;
  currentPath: string;
  env: Record<string, string>;
  loadedPackages: Record<string, string>;
}

function hiwireLength(M: EmscriptenModule): number {
  // The table is internal to the module; reading past its end traps, which is how its length shows.
  let n = 0;
  for (;;) {
    try {
      M.__hiwire_get(n);
    } catch {
      return n;
    }
    n++;
  }
}

function walk(root: FSNodeLike, visit: (node: FSNodeLike) => void): void {
  const seen = new Set<FSNodeLike>();
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop() as FSNodeLike;
    if (seen.has(node)) continue;
    seen.add(node);
    visit(node);
    const mounted = node.mounted as { root?: FSNodeLike } | null | undefined;
    if (mounted?.root) stack.push(mounted.root);
    if (node.contents && typeof node.contents === 'object' && !ArrayBuffer.isView(node.contents)) {
      for (const child of Object.values(node.contents as Record<string, FSNodeLike>)) stack.push(child);
    }
  }
}

function recordNode(M: EmscriptenModule, node: FSNodeLike): NodeRecord {
  const record: NodeRecord = { node, fields: { ...node } };
  if (M.FS.isDir(node.mode) && node.contents && typeof node.contents === 'object') {
    record.dir = { ...(node.contents as Record<string, FSNodeLike>) };
  } else if (M.FS.isFile(node.mode) && (node.contents === null || ArrayBuffer.isView(node.contents))) {
    const contents = node.contents as Uint8Array | null;
    const used = node.usedBytes ?? contents?.length ?? 0;
    record.file = { ref: contents, bytes: contents ? contents.slice(0, used) : null };
  }
  return record;
}

/**
 * Takes the image, once per interpreter, at a quiet point: after the restore, the hardening and
 * the runner's load, with no run in flight.
 */
export function captureImage(pyodide: PyodideAPI): InterpreterImage {
  const M = moduleOf(pyodide);
  const nodes: NodeRecord[] = [];
  walk(M.FS.root, (node) => nodes.push(recordNode(M, node)));
  const hiwire: unknown[] = [];
  const length = hiwireLength(M);
  for (let i = 0; i < length; i++) hiwire.push(M.__hiwire_get(i));
  const streams: InterpreterImage['streams'] = [];
  for (const stream of M.FS.streams) {
    if (stream) streams.push({ stream, fields: { ...stream }, shared: { ...stream.shared } });
  }
  const memory = M.HEAPU8.slice();
  return {
    memory,
    zeroRuns: zeroRuns(memory),
    stackPointer: M.___stack_pointer.value as number,
    tableLength: M.wasmTable.length,
    freeTableSlots: M.freeTableIndexes.map((i) => [i, M.wasmTable.get(i)]),
    nativeLibraries: Object.keys(M.LDSO.loadedLibsByName).length,
    hiwire,
    nodes,
    nameTable: [...M.FS.nameTable],
    streams,
    streamCount: M.FS.streams.length,
    mounts: [...M.FS.root.mount.mounts],
    nextInode: M.FS.nextInode,
    currentPath: M.FS.currentPath,
    env: { ...M.ENV },
    loadedPackages: { ...(pyodide.loadedPackages as Record<string, string>) },
  };
}

const RUN_GRAIN = 64 * 1024;

/** Zero-filled stretches of the image, in 64 KiB pages: filling them costs half a copy. */
function zeroRuns(memory: Uint8Array): [number, number][] {
  const zero = Buffer.alloc(RUN_GRAIN);
  const runs: [number, number][] = [];
  for (let at = 0; at + RUN_GRAIN <= memory.length; at += RUN_GRAIN) {
    if (!Buffer.from(memory.buffer, memory.byteOffset + at, RUN_GRAIN).equals(zero)) continue;
    const last = runs.at(-1);
    if (last && last[1] === at) last[1] = at + RUN_GRAIN;
    else runs.push([at, at + RUN_GRAIN]);
  }
  return runs;
}

/** Writes the image back over the heap: copies where it holds data, fills where it holds zeros. */
function writeImage(heap: Uint8Array, image: InterpreterImage): void {
  let at = 0;
  for (const [start, end] of image.zeroRuns) {
    if (start > at) heap.set(image.memory.subarray(at, start), at);
    heap.fill(0, start, end);
    at = end;
  }
  if (at < image.memory.length) heap.set(image.memory.subarray(at), at);
}

/**
 * A slot that was free in the image and now holds another function (a ctypes closure made and
 * freed during the run) is a changed table even at the same length: a later run could call it.
 */
function sameFreeSlots(M: EmscriptenModule, slots: [number, unknown][]): boolean {
  const free = M.freeTableIndexes;
  if (free.length !== slots.length) return false;
  return slots.every(([index, entry], i) => free[i] === index && M.wasmTable.get(index) === entry);
}

function sameKeys(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => b[k] === a[k]);
}

/**
 * State a run left that a reset cannot undo, judged before the reset: the interpreter must then be
 * replaced. Returns null when a reset returns it to the image.
 */
export function resetBlocker(
  pyodide: PyodideAPI,
  image: InterpreterImage,
  maxGrowthBytes: number,
): FallbackReason | null {
  const M = moduleOf(pyodide);
  // The dynamic linker's tables, GOT and imports change only while it loads a library, and every
  // load attempt, failed ones included, is registered in loadedLibsByName before it starts.
  if (Object.keys(M.LDSO.loadedLibsByName).length !== image.nativeLibraries) return 'native_library';
  if (M.wasmTable.length !== image.tableLength || !sameFreeSlots(M, image.freeTableSlots)) {
    return 'table_grew';
  }
  if (!sameKeys(pyodide.loadedPackages as Record<string, unknown>, image.loadedPackages)) {
    return 'package_installed';
  }
  // WebAssembly memory never shrinks: only a new instance gives a grown heap back.
  if (M.HEAPU8.length - image.memory.length > maxGrowthBytes) return 'heap_growth';
  return null;
}

function restoreNode(record: NodeRecord): void {
  const { node, fields } = record;
  for (const key of Object.keys(node)) if (!(key in fields)) delete node[key];
  Object.assign(node, fields);
  if (record.dir) {
    node.contents = { ...record.dir };
  } else if (record.file) {
    const { ref, bytes } = record.file;
    const current = node.contents as Uint8Array | null;
    const used = bytes?.length ?? 0;
    const unchanged =
      current === ref &&
      (bytes === null ||
        (current !== null &&
          current.length >= used &&
          Buffer.from(current.buffer, current.byteOffset, used).equals(bytes)));
    if (!unchanged) {
      node.contents = bytes ? bytes.slice() : null;
      record.file.ref = node.contents;
    }
    node.usedBytes = used;
  }
}

/** Returns the interpreter to its image. Throws when it cannot; the caller must then replace it. */
export function resetToImage(pyodide: PyodideAPI, image: InterpreterImage): void {
  const M = moduleOf(pyodide);
  const heap = M.HEAPU8;
  if (heap.length < image.memory.length) throw new Error('linear memory is smaller than its image');
  // Memory grown during the run is zeroed, as fresh pages would be; the allocator's state in the
  // image no longer knows about it.
  if (heap.length > image.memory.length) heap.fill(0, image.memory.length);
  writeImage(heap, image);
  M.___stack_pointer.value = image.stackPointer;

  // JS values the run referenced from Python: slots past the image's are emptied, so no later run
  // can read them back by index.
  const length = hiwireLength(M);
  for (let i = 0; i < length; i++) {
    const value = i < image.hiwire.length ? image.hiwire[i] : null;
    if (M.__hiwire_get(i) !== value && M.__hiwire_set(i, value) < 0) {
      throw new Error(`could not reset JS reference slot ${i}`);
    }
  }

  const fs = M.FS;
  for (const record of image.nodes) restoreNode(record);
  for (let i = 0; i < image.nameTable.length; i++) fs.nameTable[i] = image.nameTable[i] ?? null;
  fs.nameTable.length = image.nameTable.length;
  fs.streams.length = 0;
  fs.streams.length = image.streamCount;
  for (const { stream, fields, shared } of image.streams) {
    Object.assign(stream, fields);
    stream.shared = Object.assign(stream.shared, shared);
    fs.streams[stream.fd as number] = stream;
  }
  fs.root.mount.mounts.length = 0;
  fs.root.mount.mounts.push(...image.mounts);
  fs.nextInode = image.nextInode;
  fs.currentPath = image.currentPath;

  for (const key of Object.keys(M.ENV)) delete M.ENV[key];
  Object.assign(M.ENV, image.env);
  const packages = pyodide.loadedPackages as Record<string, string>;
  for (const key of Object.keys(packages)) delete packages[key];
  Object.assign(packages, image.loadedPackages);
}

/** Test support: whether the linear memory is byte-equal to the image (a 30 MB compare). */
export function memoryMatchesImage(pyodide: PyodideAPI, image: InterpreterImage): boolean {
  const heap = moduleOf(pyodide).HEAPU8;
  const head = Buffer.from(heap.buffer, heap.byteOffset, image.memory.length);
  if (!head.equals(image.memory)) return false;
  for (let i = image.memory.length; i < heap.length; i++) if (heap[i] !== 0) return false;
  return true;
}

/** Whether Pyodide declared itself unusable after a fatal error (its public API then throws). */
export function pyodideAborted(pyodide: PyodideAPI): boolean {
  const d = Object.getOwnPropertyDescriptor(pyodide, 'runPythonAsync');
  return d !== undefined && typeof d.get === 'function';
}
