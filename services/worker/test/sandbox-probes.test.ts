// The escape-route probe corpus (the routes docs/python-sandbox.md lists), run against the real
// pool in its confined process, on interpreters reset in place between probes. Every probe must end as an error result or a contained outcome, and after
// all of them: the pool still answers, no host file was written, no loopback port was hit, and no
// host environment variable was visible.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { startSandbox, type TestSandbox } from './support.ts';

const SECRET_NAME = 'NEUROAGENT_PROBE_SECRET';
const SECRET_VALUE = `secret-${process.pid}-${Date.now()}`;

interface Probe {
  name: string;
  code: string;
  /** What a contained outcome looks like for this probe. */
  expect: (r: PythonResult) => void;
}

const errorOf = (r: PythonResult) =>
  r.status === 'error' ? r : assert.fail(`expected an error result: ${JSON.stringify(r)}`);
const errorName = (r: PythonResult) => {
  const e = errorOf(r).error;
  return typeof e === 'object' && e !== null ? e.name : String(e);
};
const isPythonError =
  (...names: string[]) =>
  (r: PythonResult) => {
    assert.equal(errorOf(r).error_type, 'python-error', JSON.stringify(r));
    if (names.length > 0)
      assert.ok(names.includes(errorName(r)), `got ${errorName(r)}: ${JSON.stringify(r)}`);
  };
/** The run may fail in Python or take its thread down with it; both leave the host untouched. */
const contained = (r: PythonResult) => {
  assert.equal(r.status, 'error', JSON.stringify(r));
  assert.ok(['python-error', 'internal'].includes(errorOf(r).error_type), JSON.stringify(r));
};
const returns = (expected: unknown) => (r: PythonResult) => {
  assert.equal(r.status, 'success', JSON.stringify(r));
  assert.deepEqual(r.status === 'success' && r.return_value, expected);
};

describe('sandbox probe corpus (real pool, confined process)', () => {
  let sandbox: TestSandbox;
  let server: Server;
  let port = 0;
  let hits = 0;
  const hostDir = mkdtempSync(join(tmpdir(), 'probe-'));
  const hostFile = join(hostDir, 'host-secret.txt');
  const written = [
    join(hostDir, 'pwned-system'),
    join(hostDir, 'pwned-ctypes'),
    join(hostDir, 'pwned-open'),
    join(hostDir, 'pwned-js'),
  ];

  before(async () => {
    writeFileSync(hostFile, 'top secret host file');
    server = createServer((socket) => {
      hits++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    process.env[SECRET_NAME] = SECRET_VALUE; // visible to this process; the sandbox must not see it
    sandbox = await startSandbox({
      TASKS_PYTHON__THREADS: '2',
      TASKS_PYTHON__TIMEOUT_S: '2',
      TASKS_PYTHON__KILL_GRACE_MS: '300',
      TASKS_PYTHON__MEMORY_MB: '256',
      TASKS_PYTHON__MAX_OUTPUT_KB: '64',
      TASKS_PYTHON__MAX_RETURN_KB: '64',
    });
  });
  after(async () => {
    await sandbox?.close();
    server?.close();
    delete process.env[SECRET_NAME];
  });

  const probes = (): Probe[] => [
    {
      name: 'import js → process.env',
      code: 'import js\njs.process.env',
      expect: isPythonError('ModuleNotFoundError'),
    },
    {
      name: 'sys.modules has no js route',
      code: 'import sys\n[m for m in sys.modules if m == "js" or m.startswith(("js.", "pyodide_js"))]',
      expect: returns([]),
    },
    {
      name: 'pyodide_js mountNodeFS',
      code: `import pyodide_js\npyodide_js.mountNodeFS("/host", "${hostDir}")`,
      expect: isPythonError('ModuleNotFoundError'),
    },
    {
      name: 'pyodide_js via sys.modules',
      code: 'import sys\nsys.modules["pyodide_js"].FS',
      expect: isPythonError('KeyError'),
    },
    {
      name: 'pyodide_js useNodeSockFS',
      code: 'from pyodide_js import useNodeSockFS\nuseNodeSockFS()',
      expect: isPythonError('ModuleNotFoundError'),
    },
    {
      name: 'run_js (eval)',
      code: 'from pyodide.code import run_js\nrun_js("process.env")',
      expect: isPythonError(),
    },
    {
      name: 'Function constructor from a JsProxy',
      code: 'from pyodide.ffi import to_js\nf = to_js([]).constructor.constructor("return process")\nf().env',
      expect: contained,
    },
    {
      name: 'Function constructor from a JsProxy held by the runtime',
      code: 'import pyodide.webloop as w\nw.scheduleCallback.constructor("return process")().exit(3)',
      expect: contained,
    },
    { name: 'os.system', code: `import os\nos.system("touch ${written[0]}")`, expect: returns(32512) },
    {
      name: 'ctypes system',
      code: `import ctypes\nctypes.CDLL(None).system(b"touch ${written[1]}")`,
      expect: returns(32512),
    },
    {
      name: 'ctypes emscripten_run_script (eval)',
      code: `import ctypes\nctypes.CDLL(None).emscripten_run_script(b"require('fs').writeFileSync('${written[3]}', 'x')")`,
      expect: contained,
    },
    { name: 'subprocess', code: 'import subprocess\nsubprocess.run(["id"])', expect: isPythonError() },
    {
      name: 'python socket to loopback',
      code: `import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(("127.0.0.1", ${port}))`,
      expect: isPythonError('OSError', 'TimeoutError', 'ConnectionRefusedError'),
    },
    {
      name: 'urllib to loopback',
      code: `import urllib.request\nurllib.request.urlopen("http://127.0.0.1:${port}/", timeout=1)`,
      expect: isPythonError(),
    },
    {
      name: 'pyfetch',
      code: `from pyodide.http import pyfetch\nawait pyfetch("http://127.0.0.1:${port}/")`,
      expect: isPythonError(),
    },
    {
      name: 'read /etc/passwd',
      code: 'open("/etc/passwd").read()',
      expect: isPythonError('FileNotFoundError'),
    },
    {
      name: 'read a host file',
      code: `open("${hostFile}").read()`,
      expect: isPythonError('FileNotFoundError'),
    },
    {
      name: 'write a host path (lands in the in-memory FS only)',
      code: `import os\nos.makedirs("${hostDir}", exist_ok=True)\nopen("${written[2]}", "w").write("x")`,
      expect: returns(1),
    },
    {
      name: 'host env vars',
      code: `import os\n"${SECRET_NAME}" in os.environ or any("${SECRET_VALUE}" in v for v in os.environ.values())`,
      expect: returns(false),
    },
    { name: 'sys.exit', code: 'import sys\nsys.exit(1)', expect: isPythonError('SystemExit') },
    {
      name: 'KeyboardInterrupt',
      code: 'raise KeyboardInterrupt',
      expect: isPythonError('KeyboardInterrupt'),
    },
    { name: 'os._exit', code: 'import os\nos._exit(3)', expect: contained },
    { name: 'os.kill', code: 'import os\nos.kill(1, 9)', expect: isPythonError() },
    {
      name: 'process.exit through js',
      code: 'import js\njs.process.exit(5)',
      expect: isPythonError('ModuleNotFoundError'),
    },
    {
      name: 'infinite loop',
      code: 'while True:\n    pass',
      expect: (r) => assert.equal(errorOf(r).error_type, 'timeout'),
    },
    {
      name: 'time.sleep loop',
      code: 'import time\nwhile True:\n    time.sleep(1)',
      expect: (r) => assert.equal(errorOf(r).error_type, 'timeout'),
    },
    {
      name: 'deep recursion',
      code: 'def f(n):\n    return f(n + 1)\nf(0)',
      expect: isPythonError('RecursionError'),
    },
    {
      name: 'memory bomb (one allocation)',
      code: 'x = bytearray(1024 ** 3)',
      expect: (r) => assert.equal(errorOf(r).error_type, 'memory-limit', JSON.stringify(r)),
    },
    {
      name: 'memory bomb (growing list)',
      code: 'a = []\nwhile True:\n    a.append(bytearray(10 * 1024 ** 2))',
      expect: (r) => assert.equal(errorOf(r).error_type, 'memory-limit', JSON.stringify(r)),
    },
    {
      name: 'stdout flood',
      code: 'for i in range(30000):\n    print("flood" * 20)\n"done"',
      expect: (r) => {
        assert.equal(r.status, 'success');
        assert.ok(r.output.length < 1000);
        assert.match(r.output.at(-1) ?? '', /output truncated/);
      },
    },
    {
      name: 'huge return value',
      code: '"x" * (50 * 1024 ** 2)',
      expect: (r) => assert.equal(errorOf(r).error_type, 'output-limit'),
    },
    {
      name: 'huge exception message',
      code: 'raise ValueError("x" * (10 * 1024 ** 2))',
      expect: (r) => {
        isPythonError('ValueError')(r);
        assert.ok(JSON.stringify(r).length < 200_000, 'the error message is capped');
      },
    },
  ];

  it('contains every probe', async () => {
    const failures: string[] = [];
    for (const probe of probes()) {
      const r = await sandbox.run(probe.code);
      try {
        probe.expect(r);
      } catch (err) {
        failures.push(`${probe.name}: ${(err as Error).message}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('leaves the host untouched and the pool serving', async () => {
    for (const path of written) assert.ok(!existsSync(path), `${path} was written on the host`);
    assert.equal(hits, 0, 'no connection reached the loopback server');
    const results = await Promise.all([sandbox.run('6*7'), sandbox.run('print("ok")')]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['success', 'success'],
    );
    // The corpus ran after in-place resets, not only on fresh interpreters.
    const stats = sandbox.raw.isolationStats();
    assert.ok(stats.prepared.reset >= stats.runs / 3, JSON.stringify(stats));
  });
});
