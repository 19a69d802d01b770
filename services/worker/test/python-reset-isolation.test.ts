// The in-place reset isolates as well as a fresh restore: each case runs A, then B on the same
// thread and interpreter (the isolation report proves B's interpreter was reset, not replaced),
// and B asserts a pristine state. Then each fallback trigger is taken and counted, and a seeded
// random loop of leaky scripts checks a fingerprint of the interpreter after every reset.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { startSandbox, type TestSandbox } from './support.ts';

const value = (r: PythonResult) => {
  assert.equal(r.status, 'success', JSON.stringify(r));
  return r.status === 'success' ? r.return_value : undefined;
};
const output = (r: PythonResult) => [...r.output, ...r.stderr].join('\n');

/** A tiny seeded PRNG (mulberry32), so a failing loop can be replayed from its printed seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// What B inspects: everything a leak could reach, as one comparable value.
const FINGERPRINT = `
import sys, os, builtins, atexit, json, io
def tree(top):
    out = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        if root.startswith("/proc") or root.startswith("/dev"):
            continue
        for f in sorted(files):
            p = os.path.join(root, f)
            out.append([p, os.path.getsize(p) if os.path.isfile(p) else -1])
    return out
with open("/lib/python314.zip", "rb") as z:
    zip_head = z.read(4).hex()
{
    "modules": sorted(sys.modules),
    "builtins": sorted(dir(builtins)),
    "open_is_io_open": builtins.open is io.open,
    "dumps": json.dumps({"a": 1}),
    "env": dict(os.environ),
    "cwd": os.getcwd(),
    "tree": tree("/"),
    "devices": sorted(os.listdir("/dev")),
    "fds": sorted(os.listdir("/proc/self/fd")),
    "path": sys.path,
    "meta_path": [type(f).__name__ for f in sys.meta_path],
    "path_hooks": len(sys.path_hooks),
    "trace": [sys.gettrace() is None, sys.getprofile() is None],
    "atexit": atexit._ncallbacks(),
    "recursion": sys.getrecursionlimit(),
    "zip": zip_head,
}`;

describe('in-place reset: run A, then B on the same reset interpreter (one thread)', () => {
  let sandbox: TestSandbox;
  let baseline: unknown;

  before(async () => {
    sandbox = await startSandbox({ TASKS_PYTHON__THREADS: '1', TASKS_PYTHON__TIMEOUT_S: '2' });
    baseline = value(await sandbox.run(FINGERPRINT));
  });
  after(() => sandbox.close());

  /** Runs A, then B; asserts B's interpreter was reset in place after A. */
  async function pair(a: string, b: string): Promise<{ a: PythonResult; b: PythonResult }> {
    const ra = await sandbox.run(a);
    const before = sandbox.raw.isolationStats().prepared.reset;
    const rb = await sandbox.run(b);
    const stats = sandbox.raw.isolationStats();
    assert.equal(
      stats.prepared.reset,
      before + 1,
      `B was not on a reset interpreter: ${JSON.stringify(stats)}`,
    );
    return { a: ra, b: rb };
  }

  const cases: [string, string][] = [
    [
      'patched builtins and stdlib',
      'import builtins, json, os\nbuiltins.open = None\nbuiltins.leak = 1\njson.dumps = lambda *a, **k: "hacked"\nos.getcwd = lambda: "/evil"',
    ],
    [
      'added and mutated sys.modules entries',
      'import sys, types, json\nsys.modules["planted"] = types.ModuleType("planted")\njson.EVIL = 1\nsys.modules["json"] = types.ModuleType("json")\nsys.path.insert(0, "/evil")\nclass F:\n    def find_spec(self, *a): return None\nsys.meta_path.insert(0, F())',
    ],
    [
      'audit hooks, sys.settrace, sys.setprofile',
      'import sys\nsys.addaudithook(lambda e, a: print("AUDIT", e))\nsys.settrace(lambda *a: None)\nsys.setprofile(lambda *a: None)\nsys.setrecursionlimit(50)',
    ],
    [
      'atexit handlers',
      'import atexit\natexit.register(print, "ATEXIT LEAK")\natexit.register(lambda: 1 / 0)',
    ],
    [
      'files anywhere, an overwritten stdlib zip, an unlinked /dev/null',
      [
        'import os',
        'for p in ["/tmp/a", "/home/pyodide/b", "/output/c", "/lib/python3.14/site-packages/evil.py", "/d"]:',
        '    open(p, "w").write("x" * 10)',
        'os.makedirs("/newdir/sub", exist_ok=True)',
        'os.symlink("/tmp/a", "/home/pyodide/link")',
        'with open("/lib/python314.zip", "r+b") as z:',
        '    z.write(b"XXXX")',
        'os.truncate("/lib/python314.zip", 100)',
        'os.unlink("/dev/null")',
        'os.chdir("/")',
        'os.rename("/home/pyodide", "/moved")',
        'os.chmod("/moved", 0)',
      ].join('\n'),
    ],
    [
      'files left open',
      'import os\nf = open("/tmp/open.txt", "w")\nf.write("x")\nfd = os.open("/tmp/raw", os.O_CREAT | os.O_WRONLY)\nr, w = os.pipe()\ng = open("/lib/python314.zip", "rb")',
    ],
    ['cwd', 'import os\nos.makedirs("/tmp/deep", exist_ok=True)\nos.chdir("/tmp/deep")'],
    [
      'os.environ and putenv',
      'import os\nos.environ["LEAK"] = "1"\nos.putenv("LEAK_PUT", "2")\nos.environ["HOME"] = "/evil"\ndel os.environ["PYTHONINSPECT"]',
    ],
    [
      'a big heap (20 MB kept in a global)',
      'import builtins\nbuiltins.keep = bytearray(20_000_000)\nkeep2 = [bytes(1000) for _ in range(5000)]',
    ],
  ];
  for (const [name, leak] of cases) {
    it(name, async () => {
      const { a, b } = await pair(leak, FINGERPRINT);
      assert.equal(a.status, 'success', JSON.stringify(a));
      assert.deepEqual(value(b), baseline);
      assert.doesNotMatch(output(b), /AUDIT|ATEXIT/);
    });
  }

  it('putenv at the C level does not survive (read back with ctypes)', async () => {
    const { b } = await pair(
      'import os\nos.putenv("LEAK_C", "1")',
      'import ctypes\nlibc = ctypes.CDLL(None)\nlibc.getenv.restype = ctypes.c_char_p\nlibc.getenv(b"LEAK_C")',
    );
    assert.equal(value(b), null);
  });

  it('a big heap is gone: no large object survives and the heap is the image again', async () => {
    const { b } = await pair(
      'import builtins\nbuiltins.keep = bytearray(b"S" * 20_000_000)',
      'import gc\n[len(o) for o in gc.get_objects() if isinstance(o, (bytes, bytearray)) and len(o) > 1_000_000]',
    );
    assert.deepEqual(value(b), []);
  });

  it("nothing from A fires in B: call_later, a pending create_task, A's callbacks", async () => {
    const { b } = await pair(
      [
        'import asyncio',
        'loop = asyncio.get_event_loop()',
        'loop.call_later(0.05, lambda: print("CALL_LATER LEAK"))',
        'loop.call_soon(lambda: print("CALL_SOON LEAK"))',
        'async def later():',
        '    await asyncio.sleep(0.1)',
        '    print("TASK LEAK")',
        't = asyncio.ensure_future(later())',
      ].join('\n'),
      'import asyncio\nawait asyncio.sleep(0.4)\n1',
    );
    assert.equal(value(b), 1);
    assert.doesNotMatch(output(b), /LEAK/);
  });

  it('an asyncio.sleep cut short by the time limit does not fire later (its thread is replaced)', async () => {
    const cut = await sandbox.run(
      'import asyncio\nasyncio.get_event_loop().call_later(2.5, lambda: print("SLEEP LEAK"))\nawait asyncio.sleep(30)',
    );
    assert.equal(cut.status === 'error' && cut.error_type, 'timeout', JSON.stringify(cut));
    const b = await sandbox.run('import asyncio\nawait asyncio.sleep(1)\n2');
    assert.equal(value(b), 2);
    assert.doesNotMatch(output(b), /LEAK/);
    // A sleeping run never reaches a bytecode check: the hard limit kills its thread.
    assert.ok(sandbox.raw.isolationStats().fallbacks.timed_out >= 1);
  });

  it('ctypes reading a pointer saved by A sees no byte of A', async () => {
    const a = await sandbox.run(
      'import ctypes\nbuf = ctypes.create_string_buffer(b"TOPSECRET" * 100_000)\nctypes.addressof(buf) + 450_000',
    );
    const address = value(a) as number;
    assert.ok(Number.isInteger(address) && address > 0);
    const before = sandbox.raw.isolationStats().prepared.reset;
    const b = await sandbox.run(`import ctypes\nctypes.string_at(${address}, 4096)`);
    assert.equal(sandbox.raw.isolationStats().prepared.reset, before + 1);
    assert.doesNotMatch(String(value(b)), /TOPSECRET|SECRETTOP/);
  });

  it('a bounded randomized loop of leaky scripts finds no leak', async () => {
    const seed = Number(process.env.RESET_LOOP_SEED ?? Date.now() % 1_000_000);
    const rounds = Number(process.env.RESET_LOOP_ROUNDS ?? 1000);
    const rand = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const leaks = [
      ...cases.map(([, code]) => code),
      'x = [str(i) * 50 for i in range(20000)]',
      'import collections, decimal, fractions\ncollections.OrderedDict.leak = 1\ndecimal.getcontext().prec = 3',
      'import random\nrandom.seed(42)',
      'import re\nre.compile("x" * 1000)\nre.purge = None',
      'import io, sys\nsys.stdout = io.StringIO()\nsys.stderr = io.StringIO()',
      'import os\nfor i in range(200):\n    open(f"/tmp/f{i}", "w").write(str(i))',
      'raise ValueError("boom")',
      'import sys\nsys.exit(3)',
      'def f(): return f()\nf()',
    ];
    const randoms = new Set<number>();
    for (let i = 0; i < rounds; i++) {
      const code = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(leaks)).join('\n');
      await sandbox.run(code);
      const check = await sandbox.run(`${FINGERPRINT}\n`);
      assert.deepEqual(value(check), baseline, `leak after round ${i} (seed ${seed}) of:\n${code}`);
      const r = value(await sandbox.run('import random\nrandom.random()')) as number;
      randoms.add(r);
    }
    // Every run reseeds: a reset interpreter must not replay the image's random sequence.
    assert.equal(randoms.size, rounds, `random values repeat (seed ${seed})`);
    const stats = sandbox.raw.isolationStats();
    assert.ok(stats.prepared.reset >= rounds * 3 * 0.9, `too few resets: ${JSON.stringify(stats.prepared)}`);
  });
});

describe('in-place reset fallbacks: each trigger is taken, counted, and the next run is pristine', () => {
  let sandbox: TestSandbox;
  before(async () => {
    sandbox = await startSandbox({
      TASKS_PYTHON__THREADS: '1',
      TASKS_PYTHON__TIMEOUT_S: '2',
      TASKS_PYTHON__MEMORY_MB: '256',
      TASKS_PYTHON__RESET_MAX_GROWTH_MB: '32',
    });
  });
  after(() => sandbox.close());

  async function expectFallback(code: string, reason: string, check = '1') {
    const before = sandbox.raw.isolationStats();
    await sandbox.run(code);
    const after = sandbox.raw.isolationStats();
    assert.equal(
      after.fallbacks[reason as keyof typeof after.fallbacks],
      before.fallbacks[reason as keyof typeof before.fallbacks] + 1,
      `${reason} not counted: ${JSON.stringify(after.fallbacks)}`,
    );
    return sandbox.run(check);
  }

  it('the function table grew (a ctypes callback)', async () => {
    const b = await expectFallback(
      'import ctypes\ncb = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)\ncb()',
      'table_grew',
      '"cb" in dir()',
    );
    assert.equal(value(b), false);
  });

  it('a native library was loaded (a WebAssembly side module written by the script)', async () => {
    const dylib = [
      'import ctypes',
      'name = b"dylink.0"',
      'payload = bytes([len(name)]) + name + bytes([1, 5, 0, 0, 0, 0, 0])',
      'open("/tmp/evil.so", "wb").write(b"\\0asm\\1\\0\\0\\0" + bytes([0, len(payload)]) + payload)',
      'ctypes.CDLL("/tmp/evil.so")',
    ].join('\n');
    const b = await expectFallback(dylib, 'native_library', 'import os\nos.path.exists("/tmp/evil.so")');
    assert.equal(value(b), false);
  });

  it('the run was interrupted at the time limit', async () => {
    const b = await expectFallback('while True: pass', 'interrupted', '3');
    assert.equal(value(b), 3);
  });

  it('the heap grew past TASKS_PYTHON__RESET_MAX_GROWTH_MB', async () => {
    const b = await expectFallback('x = bytearray(64 * 1024 * 1024)\n1', 'heap_growth', '4');
    assert.equal(value(b), 4);
  });

  it('the run hit MemoryError (the thread is replaced)', async () => {
    const b = await expectFallback('x = bytearray(1024 * 1024 * 1024)', 'memory_error', '5');
    assert.equal(value(b), 5);
  });

  it('calling a table slot past the image traps; the run fails and the next one is pristine', async () => {
    const r = await sandbox.run('import ctypes\nctypes.CFUNCTYPE(ctypes.c_int)(10_000_000)()');
    assert.equal(r.status, 'error', JSON.stringify(r));
    const b = await sandbox.run(FINGERPRINT);
    assert.equal(b.status, 'success', JSON.stringify(b));
    const stats = sandbox.raw.isolationStats();
    // Pyodide declares itself dead after the trap: its interpreter, or its thread, is replaced.
    assert.ok(stats.fallbacks.aborted + stats.prepared.new_thread >= 1, JSON.stringify(stats));
  });
});
