// No state survives from one run to the next on the same thread, whoever runs them: each case
// the issue names, on a one-thread pool so that consecutive runs share the thread.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { startSandbox, type TestSandbox } from './support.ts';

const value = (r: PythonResult) => {
  assert.equal(r.status, 'success', JSON.stringify(r));
  return r.status === 'success' ? r.return_value : undefined;
};

describe('state isolation between runs (one thread)', () => {
  let sandbox: TestSandbox;
  before(async () => {
    sandbox = await startSandbox({ TASKS_PYTHON__THREADS: '1', TASKS_PYTHON__TIMEOUT_S: '5' });
  });
  after(() => sandbox.close());

  it('globals', async () => {
    value(await sandbox.run('secret = "alice"'));
    assert.equal(value(await sandbox.run('"secret" in globals()')), false);
  });

  it('imported user modules (a module file, and a module planted in sys.modules)', async () => {
    value(await sandbox.run('open("/home/pyodide/mymod.py", "w").write("X = 1")\nimport mymod\nmymod.X'));
    value(await sandbox.run('import sys, types\nsys.modules["planted"] = types.ModuleType("planted")\n1'));
    const r = await sandbox.run('import sys\n["mymod" in sys.modules, "planted" in sys.modules]');
    assert.deepEqual(value(r), [false, false]);
    const imp = await sandbox.run('import mymod');
    assert.equal(imp.status === 'error' && (imp.error as { name: string }).name, 'ModuleNotFoundError');
  });

  it('monkey-patched builtins and standard-library modules', async () => {
    value(
      await sandbox.run(
        'import builtins, json\nbuiltins.len = lambda x: 42\njson.dumps = lambda *a, **k: "hacked"\nlen([1])',
      ),
    );
    assert.deepEqual(value(await sandbox.run('import json\n[len([1, 2]), json.dumps(1)]')), [2, '1']);
  });

  it('hooks left behind (sys.path, import hooks, audit hooks, pending callbacks)', async () => {
    value(
      await sandbox.run(
        [
          'import sys, asyncio',
          'sys.path.insert(0, "/evil")',
          'class Finder:',
          '    def find_spec(self, *a): return None',
          'sys.meta_path.insert(0, Finder())',
          'sys.addaudithook(lambda *a: None)',
          'asyncio.get_event_loop().call_later(0.2, lambda: print("leaked callback"))',
          '1',
        ].join('\n'),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    const r = await sandbox.run(
      'import sys\n["/evil" in sys.path, type(sys.meta_path[0]).__name__ == "Finder"]',
    );
    assert.deepEqual(value(r), [false, false]);
    assert.deepEqual(r.output, [], "the previous run's callback did not print into this run");
  });

  it('files in the in-memory file system', async () => {
    value(
      await sandbox.run(
        'import os\nopen("/tmp/left.txt", "w").write("x")\nos.makedirs("/output", exist_ok=True)\nopen("/output/o.txt", "w").write("y")\n1',
      ),
    );
    assert.deepEqual(
      value(await sandbox.run('import os\n[os.path.exists("/tmp/left.txt"), os.listdir("/output")]')),
      [false, []],
    );
  });

  it('reseeds randomness after every restore', async () => {
    const a = value(await sandbox.run('import random\nrandom.random()'));
    const b = value(await sandbox.run('import random\nrandom.random()'));
    assert.notEqual(a, b);
  });

  it('cancels a running script: error_type cancelled, and the thread serves the next run', async () => {
    const abort = new AbortController();
    const running = sandbox.run('while True:\n    pass', abort.signal);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    abort.abort();
    const r = await running;
    assert.equal(r.status === 'error' && r.error_type, 'cancelled', JSON.stringify(r));
    assert.ok(performance.now() - t0 < 2000, 'cancelled within 2 s');
    assert.equal(value(await sandbox.run('6*7')), 42);
  });

  it('cancels a script that ignores the interrupt (time.sleep) by killing its thread', async () => {
    const abort = new AbortController();
    const running = sandbox.run('import time\ntime.sleep(30)', abort.signal);
    await new Promise((r) => setTimeout(r, 300));
    abort.abort();
    const r = await running;
    assert.equal(r.status === 'error' && r.error_type, 'cancelled', JSON.stringify(r));
    assert.equal(value(await sandbox.run('6*7')), 42);
  });
});

describe('trusted mode: TASKS_PYTHON__REUSE_INTERPRETER=true (one thread)', () => {
  let sandbox: TestSandbox;
  before(async () => {
    sandbox = await startSandbox({
      TASKS_PYTHON__THREADS: '1',
      TASKS_PYTHON__TIMEOUT_S: '1',
      TASKS_PYTHON__REUSE_INTERPRETER: 'true',
    });
  });
  after(() => sandbox.close());

  it('keeps the interpreter (module state persists) but gives fresh globals and an empty /output', async () => {
    value(
      await sandbox.run('import builtins\nbuiltins.marker = 1\nx = 1\nopen("/output/a.txt", "w").write("a")'),
    );
    const r = await sandbox.runWithArtifacts(
      'import builtins, os\n[hasattr(builtins, "marker"), "x" in globals(), os.listdir("/output")]',
    );
    assert.deepEqual(value(r.result), [true, false, []]);
    assert.deepEqual(r.artifacts, []);
  });

  it('replaces the interpreter after a run that timed out', async () => {
    value(await sandbox.run('import builtins\nbuiltins.marker2 = 1'));
    const t = await sandbox.run('while True:\n    pass');
    assert.equal(t.status === 'error' && t.error_type, 'timeout');
    assert.equal(value(await sandbox.run('import builtins\nhasattr(builtins, "marker2")')), false);
  });
});
