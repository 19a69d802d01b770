// User code must not switch the runner's caps off. Each attack rebinds a helper the runner calls
// after the user's code has run: through `import __main__` (where the runner used to live) and, for
// the closures it lives in now, by digging the closure cells out of gc.get_objects(). Either way
// the report that comes back must respect every cap, through the real pool; the JS re-checks
// (output-limits.ts) are what stop the gc route.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { startSandbox, type TestSandbox } from './support.ts';

/** Replaces the named closure variables of every runner function it can find; prints the count. */
const TAMPER = `
import gc, types
def tamper(**values):
    hits = 0
    for o in gc.get_objects():
        if isinstance(o, types.FunctionType) and o.__closure__ and o.__code__.co_filename == "<sandbox-runner>":
            for name, cell in zip(o.__code__.co_freevars, o.__closure__):
                if name in values:
                    cell.cell_contents = values[name]
                    hits += 1
    print("tampered", hits)
`;

const MB = 1024 * 1024;

function outputLimit(r: PythonResult): void {
  assert.equal(r.status, 'error', JSON.stringify(r).slice(0, 500));
  assert.equal(r.status === 'error' && r.error_type, 'output-limit', JSON.stringify(r).slice(0, 500));
}

describe('runner integrity (real pool): rebinding the runner cannot lift a cap', () => {
  let sandbox: TestSandbox;
  before(async () => {
    sandbox = await startSandbox({
      TASKS_PYTHON__THREADS: '1',
      TASKS_PYTHON__MAX_RETURN_KB: '1',
      TASKS_PYTHON__MAX_ARTIFACTS: '10',
      TASKS_PYTHON__MAX_ARTIFACT_MB: '1',
      TASKS_PYTHON__MAX_ARTIFACTS_TOTAL_MB: '2',
    });
  });
  after(() => sandbox?.close());

  it('finds none of the runner in __main__', async () => {
    const r = await sandbox.run(
      'import __main__\n[n for n in dir(__main__) if n.startswith("_neuro") or n in ("_len", "_encode", "_dumps", "_Collector", "_clip")]',
    );
    assert.equal(r.status, 'success', JSON.stringify(r));
    assert.deepEqual(r.status === 'success' && r.return_value, []);
  });

  it('length check rebound through __main__: a 5 MB return value still breaks a 1 KB cap', async () => {
    const r = await sandbox.run('import __main__\n__main__._len = lambda s: 0\n"x" * (5 * 1024 * 1024)');
    outputLimit(r);
    assert.ok(JSON.stringify(r).length < 10_000);
  });

  it('encoder and length check rebound through __main__: the real value comes back', async () => {
    const code = `import __main__
__main__._encode = lambda v: '"' + "y" * (5 * 1024 * 1024) + '"'
__main__._dumps = __main__._encode
__main__._len = lambda s: 0
1`;
    const r = await sandbox.run(code);
    assert.equal(r.status, 'success', JSON.stringify(r).slice(0, 500));
    assert.equal(r.status === 'success' && r.return_value, 1);
  });

  it('length check rebound in its closure cell: the JS check still fails the run', async () => {
    const r = await sandbox.run(`${TAMPER}\ntamper(len_=lambda s: 0)\n"x" * (5 * 1024 * 1024)`);
    outputLimit(r);
    // The attack did reach the runner: only the JS-side check stood in its way.
    assert.match(r.output.join('\n'), /tampered [1-9]/);
    assert.ok(JSON.stringify(r).length < 10_000);
  });

  it('collector admit rebound through __main__: 30 files never get past a cap of 10', async () => {
    const code = `import __main__, os
c = getattr(__main__, "_Collector", None)
if c is not None:
    c.admit = lambda self, name, size: True
os.makedirs("/output", exist_ok=True)
for i in range(30):
    open(f"/output/f{i:02}.txt", "w").write("x")
1`;
    const { result, artifacts } = await sandbox.runWithArtifacts(code);
    assert.ok(artifacts.length <= 10, `${artifacts.length} artifacts`);
    assert.equal(result.status, 'success', JSON.stringify(result).slice(0, 500));
    assert.match(result.stderr.join('\n'), /more than 10 artifacts/);
  });

  it('collector caps rebound in closure cells: count, size and total fail with output-limit', async () => {
    const code = `${TAMPER}
import os
tamper(len_=lambda s: 0)
os.makedirs("/output", exist_ok=True)
for i in range(30):
    open(f"/output/f{i:02}.txt", "w").write("x")
open("/output/big.bin", "wb").write(b"z" * (3 * 1024 * 1024))
1`;
    const { result, artifacts } = await sandbox.runWithArtifacts(code);
    outputLimit(result);
    assert.deepEqual(artifacts, []);
    assert.deepEqual(result.output, [], 'nothing of a broken report is passed on');
  });

  it('one artifact over the size cap, with the size check rebound, is refused', async () => {
    const code = `${TAMPER}
import os
tamper(len_=lambda s: 0, getsize=lambda p: 0)
os.makedirs("/output", exist_ok=True)
open("/output/big.bin", "wb").write(b"z" * (${1.5 * MB}))
1`;
    const { result, artifacts } = await sandbox.runWithArtifacts(code);
    outputLimit(result);
    assert.deepEqual(artifacts, []);
  });

  it('content type with control characters, from a rebound guess_type, is refused', async () => {
    const code = `${TAMPER}
import mimetypes, os
evil = lambda name, strict=True: ("text/html\\r\\nSet-Cookie: a=b", None)
mimetypes.guess_type = evil
tamper(guess_type=evil)
os.makedirs("/output", exist_ok=True)
open("/output/page.txt", "w").write("<script>alert(1)</script>")
1`;
    const { result, artifacts } = await sandbox.runWithArtifacts(code);
    outputLimit(result);
    assert.deepEqual(artifacts, []);
  });

  it('file name with control characters is refused', async () => {
    const code =
      'import os\nos.makedirs("/output", exist_ok=True)\nopen("/output/a\\x1b[2J\\r\\n.txt", "w").write("x")\n1';
    const { result, artifacts } = await sandbox.runWithArtifacts(code);
    outputLimit(result);
    assert.deepEqual(artifacts, []);
  });

  it('error text clip rebound (through __main__ and in its cell): a 10 MB message never comes back', async () => {
    const code = `${TAMPER}
import __main__
__main__._MAX_TEXT = 10 ** 9
tamper(max_text=10 ** 9)
raise ValueError("e" * (10 * 1024 * 1024))`;
    const r = await sandbox.run(code);
    assert.equal(r.status, 'error');
    assert.ok(JSON.stringify(r).length < 300_000, `${JSON.stringify(r).length} bytes of result`);
  });

  it('the pool lives on and runs honest code afterwards', async () => {
    const r = await sandbox.run('sum(range(10))');
    assert.equal(r.status === 'success' && r.return_value, 45);
  });
});
