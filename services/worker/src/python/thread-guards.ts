// Process-wide guards installed in a Pyodide thread before any interpreter loads. Python can reach
// Emscripten's JS imports (ctypes calls any exported symbol), so these close the routes to the
// host at the JS level, under the Python-level hardening and the sandbox process's permissions:
//  - child_process: Emscripten's system() runs `spawnSync(cmd, {shell: true})`; the stubs make
//    os.system and ctypes' system() return 127 and run nothing;
//  - ws: Emscripten's socket layer opens WebSockets to any host:port; the stub makes connect()
//    fail with EHOSTUNREACH, so nothing reaches the host or the network;
//  - WebAssembly memory: growth past the cap is refused, which Python sees as MemoryError;
//  - the run gate: timers, immediates and finalizers scheduled by a run die with it.
import { AsyncLocalStorage } from 'node:async_hooks';
import childProcess from 'node:child_process';
import { constants as fsConstants, readFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { constants as osConstants } from 'node:os';

const DENIED = 'process creation is disabled in the Python sandbox';

export function blockChildProcesses(): void {
  const cp = childProcess as unknown as Record<string, unknown>;
  cp.spawnSync = () => ({
    pid: 0,
    output: [null, '', ''],
    stdout: '',
    stderr: '',
    status: 127,
    signal: null,
  });
  for (const name of ['execSync', 'execFileSync', 'spawn', 'exec', 'execFile', 'fork']) {
    cp[name] = () => {
      throw new Error(DENIED);
    };
  }
  // Propagate the stubs to `import('node:child_process')` namespaces as well as require().
  syncBuiltinESMExports();
}

class BlockedWebSocket {
  constructor() {
    throw new Error('network access is disabled in the Python sandbox');
  }
}

/** Replaces `ws` in the module cache of the require() that Pyodide's Emscripten runtime uses. */
export function blockSockets(indexURL: string): void {
  const req = createRequire(`${indexURL}pyodide.asm.mjs`);
  const resolved = req.resolve('ws');
  const stub = {
    id: resolved,
    filename: resolved,
    loaded: true,
    exports: BlockedWebSocket,
    children: [],
    paths: [],
  };
  (req.cache as Record<string, unknown>)[resolved] = stub;
}

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(delta: number): number;
}

export function capWasmMemory(maxBytes: number): void {
  const proto = (globalThis as unknown as { WebAssembly: { Memory: { prototype: WasmMemory } } }).WebAssembly
    .Memory.prototype;
  const grow = proto.grow;
  proto.grow = function cappedGrow(this: WasmMemory, delta: number): number {
    if (this.buffer.byteLength + delta * 65536 > maxBytes) {
      throw new RangeError(`WebAssembly memory cap of ${maxBytes} bytes reached`);
    }
    return grow.call(this, delta);
  };
}

type Callback = (...args: unknown[]) => void;
type Schedule<H> = (fn: Callback, ms?: number, ...args: unknown[]) => H;
type Clear<H> = (handle: H | undefined) => void;

/**
 * The thread's own timers, taken before the run gate replaces the globals: the thread's machinery
 * (install time limits, recycling, loading the next interpreter) must never be dropped with a run.
 */
export const hostTimers = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setImmediate: globalThis.setImmediate,
};

const threadWork = new AsyncLocalStorage<true>();

/**
 * Runs the thread's own asynchronous work (restoring a spare interpreter while a run may be in
 * progress) outside the run gate: what it schedules is the thread's, never dropped with the run.
 */
export function outsideRuns<T>(work: () => Promise<T>): Promise<T> {
  return threadWork.run(true, work);
}

export interface RunGate {
  /** Callbacks and finalizers scheduled from now on belong to this run. */
  begin(): void;
  /** Cancels the run's pending timers; any of its callbacks or finalizers that still fire are dropped. */
  end(): void;
}

/**
 * Scopes everything a run schedules to that run. Pyodide's event loop schedules `call_soon`,
 * `call_later` and task steps through the thread's global setTimeout and setImmediate (not through
 * the interpreter's jsglobals), and its FinalizationRegistry runs `_Py_DecRef`, and so Python
 * `__del__` code, whenever V8 collects an old proxy. Without the gate a run's leftovers act during
 * the next run: a busy callback eats the next user's time limit, a state-changing one reaches the
 * next run in reuse mode. Callbacks scheduled outside any run (the thread's own, Pyodide's at
 * load) always run. In reuse mode a dropped finalizer leaks its Python object until the thread
 * is recycled (TASKS_PYTHON__RECYCLE_AFTER_RUNS), which is the price of never running it late.
 */
export function gateRunCallbacks(): RunGate {
  const g = globalThis as unknown as Record<string, unknown>;
  let current = 0;
  let last = 0;
  const live = (epoch: number) => epoch === 0 || epoch === current;
  const epochNow = () => (threadWork.getStore() ? 0 : current);
  const pending = new Map<unknown, () => void>();

  function gate<H>(schedule: Schedule<H>, clear: Clear<H>, repeats: boolean): [Schedule<H>, Clear<H>] {
    const gated: Schedule<H> = (fn, ms, ...args) => {
      const epoch = epochNow();
      if (typeof fn !== 'function') return schedule(fn, ms, ...args); // Node throws its own error
      const handle: H = schedule(() => {
        if (!repeats) pending.delete(handle);
        if (live(epoch)) fn(...args);
      }, ms);
      if (epoch !== 0) pending.set(handle, () => clear(handle));
      return handle;
    };
    const clearGated: Clear<H> = (handle) => {
      pending.delete(handle);
      clear(handle);
    };
    return [gated, clearGated];
  }

  const { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate } = globalThis;
  const timeout = gate(setTimeout as Schedule<NodeJS.Timeout>, clearTimeout, false);
  const interval = gate(setInterval as Schedule<NodeJS.Timeout>, clearInterval, true);
  const immediate = gate(
    ((fn: Callback, _ms?: number, ...args: unknown[]) =>
      setImmediate(fn, ...args)) as Schedule<NodeJS.Immediate>,
    clearImmediate,
    false,
  );
  [g.setTimeout, g.clearTimeout] = timeout;
  [g.setInterval, g.clearInterval] = interval;
  g.setImmediate = (fn: Callback, ...args: unknown[]) => immediate[0](fn, undefined, ...args);
  g.clearImmediate = immediate[1];

  const HostRegistry = globalThis.FinalizationRegistry;
  interface Held {
    epoch: number;
    value: unknown;
  }
  class RunScopedRegistry extends HostRegistry<Held> {
    constructor(cleanup: (value: unknown) => void) {
      super((held) => {
        if (live(held.epoch)) cleanup(held.value);
      });
    }
    override register(target: WeakKey, value: unknown, token?: WeakKey): void {
      super.register(target, { epoch: epochNow(), value }, token);
    }
  }
  g.FinalizationRegistry = RunScopedRegistry;

  return {
    begin() {
      current = ++last;
    },
    end() {
      current = 0;
      for (const clear of pending.values()) clear();
      pending.clear();
    },
  };
}

/** Timers for one interpreter's jsglobals, so a discarded interpreter's pending callbacks die with it. */
export function createTimerScope() {
  const timeouts = new Set<NodeJS.Timeout>();
  const intervals = new Set<NodeJS.Timeout>();
  const globals = {
    setTimeout(fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) {
      const t = setTimeout(() => {
        timeouts.delete(t);
        fn(...args);
      }, ms);
      timeouts.add(t);
      return t;
    },
    clearTimeout(t: NodeJS.Timeout) {
      timeouts.delete(t);
      clearTimeout(t);
    },
    setInterval(fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) {
      const t = setInterval(fn, ms, ...args);
      intervals.add(t);
      return t;
    },
    clearInterval(t: NodeJS.Timeout) {
      intervals.delete(t);
      clearInterval(t);
    },
    queueMicrotask: (fn: () => void) => queueMicrotask(fn),
  };
  return {
    globals,
    clearAll() {
      for (const t of timeouts) clearTimeout(t);
      for (const t of intervals) clearInterval(t);
      timeouts.clear();
      intervals.clear();
    },
  };
}

/**
 * Emscripten's NODEFS start-up asks for `process.binding('constants')`, which the permission model
 * denies (it would kill the load). Serve that one binding from the public fs/os constants.
 */
export function serveConstantsBinding(): void {
  const proc = process as unknown as { binding(name: string): unknown };
  const original = proc.binding.bind(process);
  proc.binding = (name: string) =>
    name === 'constants' ? { fs: fsConstants, os: osConstants } : original(name);
}

interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(source: unknown, imports?: object): Promise<unknown>;
}

/**
 * Compiles Pyodide's WebAssembly module once per thread and serves every later instantiation of
 * the same bytes from it: every restore (each run's in restore mode, a spare's or a fallback's
 * in reset mode) then skips the ~40 ms compile (a quarter of a snapshot restore). Pyodide instantiates from the file's bytes; they are recognised by size.
 */
export async function cachePyodideModule(indexURL: string): Promise<void> {
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const bytes = new Uint8Array(readFileSync(`${indexURL}pyodide.asm.wasm`));
  const module = await wasm.compile(bytes);
  const instantiate = wasm.instantiate.bind(wasm);
  wasm.instantiate = (source: unknown, imports?: object) => {
    if (ArrayBuffer.isView(source) && source.byteLength === bytes.byteLength) {
      return instantiate(module, imports).then((instance) => ({ instance, module }));
    }
    return instantiate(source, imports);
  };
}
