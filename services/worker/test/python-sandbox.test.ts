// The real sandbox process with real Pyodide threads: no mocks.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PythonFailure, PythonResult } from '@neuroagent/contracts';
import { InfrastructureError } from '@neuroagent/platform';
import { startSandbox, type TestSandbox } from './support.ts';

function assertFailure(r: PythonResult): asserts r is PythonFailure {
  assert.equal(r.status, 'error', JSON.stringify(r));
}

describe('python sandbox (real Pyodide pool in a child process)', () => {
  let sandbox: TestSandbox;
  before(async () => {
    sandbox = await startSandbox({
      TASKS_PYTHON__THREADS: '2',
      TASKS_PYTHON__TIMEOUT_S: '1.5',
      TASKS_PYTHON__KILL_GRACE_MS: '300',
      TASKS_PYTHON__MAX_OUTPUT_KB: '2',
      TASKS_PYTHON__MAX_RETURN_KB: '4',
    });
  });
  after(() => sandbox.close());

  it('returns stdout lines and the last expression as JSON', async () => {
    const r = await sandbox.run('print(1+1)\n6*7');
    assert.deepEqual(r, { status: 'success', output: ['2'], stderr: [], return_value: 42 });
  });

  it('supports top-level await and JSON-encodes containers', async () => {
    const r = await sandbox.run('import asyncio\nawait asyncio.sleep(0)\n{"a": [1, 2.5, None], "s": {3}}');
    assert.equal(r.status, 'success');
    assert.deepEqual(r.status === 'success' && r.return_value, { a: [1, 2.5, null], s: [3] });
  });

  it('reports a Python exception with its name, message, traceback and the stdout before it', async () => {
    const r = await sandbox.run('print("before")\nx = 1\nraise ValueError("boom")');
    assertFailure(r);
    assert.equal(r.error_type, 'python-error');
    assert.deepEqual(r.output, ['before']);
    const err = r.error as { name: string; message: string; traceback: string };
    assert.equal(err.name, 'ValueError');
    assert.equal(err.message, 'boom');
    assert.match(err.traceback, /File "<exec>", line 3, in <module>/);
    assert.doesNotMatch(err.traceback, /_neuro_run|_pyodide/);
  });

  it('gives every run fresh globals', async () => {
    await sandbox.run('leak = 5');
    await sandbox.run('leak = 5'); // both threads
    const r = await sandbox.run('leak');
    assertFailure(r);
    assert.equal((r.error as { name: string }).name, 'NameError');
  });

  it('turns SystemExit into an error result and keeps serving', async () => {
    const r = await sandbox.run('import sys\nsys.exit(3)');
    assertFailure(r);
    assert.equal((r.error as { name: string }).name, 'SystemExit');
    assert.equal((await sandbox.run('1')).status, 'success');
  });

  it('stops a busy loop with the soft interrupt, then serves the next task', async () => {
    const t0 = performance.now();
    const r = await sandbox.run('while True:\n    pass');
    assertFailure(r);
    assert.equal(r.error_type, 'timeout');
    assert.ok(performance.now() - t0 < 1500 + 300 + 1000, 'stopped near the limit');
    assert.deepEqual(await sandbox.run('6*7'), {
      status: 'success',
      output: [],
      stderr: [],
      return_value: 42,
    });
  });

  it('kills a thread that ignores the interrupt (time.sleep), and the pool keeps serving', async () => {
    const r = await sandbox.run('import time\ntime.sleep(30)');
    assertFailure(r);
    assert.equal(r.error_type, 'timeout');
    const results = await Promise.all([sandbox.run('1'), sandbox.run('2')]);
    assert.deepEqual(
      results.map((x) => x.status === 'success' && x.return_value),
      [1, 2],
    );
  });

  it('truncates a stdout flood with a marker', async () => {
    const r = await sandbox.run('for i in range(10000):\n    print("x" * 50)');
    assert.equal(r.status, 'success');
    assert.ok(r.output.length < 60);
    assert.match(r.output.at(-1) ?? '', /^\[output truncated: \d+ bytes over the 2048-byte limit dropped\]$/);
  });

  it('refuses a return value over its cap with output-limit', async () => {
    const r = await sandbox.run('"x" * 10000');
    assertFailure(r);
    assert.equal(r.error_type, 'output-limit');
  });

  it('fails in-flight runs with a retryable error when the sandbox process dies, then restarts it', async () => {
    const pid = sandbox.pid();
    assert.ok(pid);
    const running = sandbox.run('while True:\n    pass');
    await new Promise((r) => setTimeout(r, 200));
    process.kill(pid, 'SIGKILL');
    await assert.rejects(running, (err: unknown) => err instanceof InfrastructureError && err.retryable);
    const r = await sandbox.run('6*7');
    assert.equal(r.status === 'success' && r.return_value, 42);
    assert.notEqual(sandbox.pid(), pid);
  });
});
