// The in-place reset at the level of one interpreter, in a fresh Node process with --expose-gc and
// the thread's run gate installed, as a pool thread has it: the memory is byte-equal to the image
// right after a reset, forcing the collection of many proxies from an earlier run leaves it
// unchanged, ctypes sees the image's bytes at a pointer an earlier run saved, a table slot past
// the image traps, and the version and shape check refuses what the reset does not know.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from '../src/config.ts';
import { buildSandboxConfig } from '../src/python/sandbox-config.ts';

const exec = promisify(execFile);
const src = (path: string) => JSON.stringify(new URL(`../src/python/${path}`, import.meta.url).href);

async function inFreshProcess(body: string): Promise<Record<string, unknown>> {
  const config = await buildSandboxConfig(loadWorkerConfig({}), createLogger('test', 'silent'));
  const script = `
    import { readFileSync } from 'node:fs';
    import { gateRunCallbacks, hostTimers } from ${src('thread-guards.ts')};
    import { createInterpreter } from ${src('interpreter.ts')};
    import { checkResetSupport, memoryMatchesImage, pyodideAborted, resetToImage } from ${src('inplace-reset.ts')};
    const gate = gateRunCallbacks();
    const config = JSON.parse(process.argv[1]);
    const interp = await createInterpreter({
      indexURL: config.indexURL,
      snapshot: config.snapshotPath ? new Uint8Array(readFileSync(config.snapshotPath)) : null,
      snapshotPackages: config.snapshotPackages,
      lockFile: null,
      packages: null,
      packageCacheDir: null,
    });
    interp.captureImage();
    const image = interp.image;
    const pyodide = interp.pyodide;
    const run = async (code) => {
      gate.begin();
      try {
        return await interp.run(code, 1 << 20);
      } finally {
        gate.end();
      }
    };
    const settle = async () => {
      for (let i = 0; i < 6; i++) {
        globalThis.gc();
        await new Promise((resolve) => hostTimers.setTimeout(resolve, 30));
      }
    };
    const out = {};
    ${body}
    process.stdout.write(JSON.stringify(out));
    process.exit(0);`;
  const { stdout } = await exec(
    process.execPath,
    ['--expose-gc', '--input-type=module', '-e', script, JSON.stringify(config)],
    { maxBuffer: 16 << 20 },
  );
  return JSON.parse(stdout);
}

describe('in-place reset of one interpreter (fresh process, forced GC)', () => {
  let out: Record<string, unknown>;
  before(async () => {
    out = await inFreshProcess(`
      out.matchesAtCapture = memoryMatchesImage(pyodide, image);
      const leaky = await run('import builtins, os\\nbuiltins.x = bytearray(b"A" * 30_000_000)\\nos.chdir("/tmp")\\nopen("/tmp/f", "w").write("x")');
      out.leakyOk = leaky.ok;
      out.dirtyBeforeReset = !memoryMatchesImage(pyodide, image);
      out.grewBy = pyodide._module.HEAPU8.length - image.memory.length;
      interp.reset();
      out.matchesAfterReset = memoryMatchesImage(pyodide, image);

      // JS values an earlier run left referenced from Python (proxies it kept on builtins): the
      // reset empties their JS-reference slots.
      await run('import builtins\\nfrom pyodide.ffi import create_proxy\\nbuiltins.ps = [create_proxy(object()) for _ in range(5000)]');
      const M = pyodide._module;
      const pastImage = () => {
        let n = 0;
        for (let i = image.hiwire.length; ; i++) {
          let v;
          try {
            v = M.__hiwire_get(i);
          } catch {
            return n;
          }
          if (v !== null && v !== undefined) n++;
        }
      };
      out.slotsBeforeReset = pastImage();
      interp.reset();
      out.slotsAfterReset = pastImage();

      // Many proxies made during one run and never destroyed: when V8 collects them, their
      // finalizers would _Py_DecRef into the reset heap. The gate drops them.
      gate.begin();
      let held = [];
      for (let i = 0; i < 5000; i++) held.push(pyodide.runPython('object()'));
      gate.end();
      out.proxies = held.length;
      held = null;
      interp.reset();
      await settle();
      out.matchesAfterGc = memoryMatchesImage(pyodide, image);

      // A pointer saved by one run, read by the next: the image's bytes, not the earlier run's.
      const saved = await run('import ctypes\\nb = ctypes.create_string_buffer(b"TOPSECRET" * 200_000)\\nctypes.addressof(b) + 900_000');
      const address = saved.value;
      interp.reset();
      const read = await run('import ctypes\\nctypes.string_at(' + address + ', 64).hex()');
      const expected = address + 64 <= image.memory.length
        ? Buffer.from(image.memory.subarray(address, address + 64)).toString('hex')
        : '00'.repeat(64);
      out.pointerRead = read.value;
      out.pointerExpected = expected;
      interp.reset();

      // A reset that cannot be done throws (and the thread then replaces the interpreter).
      try {
        resetToImage(pyodide, { ...image, memory: new Uint8Array(pyodide._module.HEAPU8.length + 65536) });
        out.badResetThrew = false;
      } catch (err) {
        out.badResetThrew = true;
      }
      interp.reset();

      // The version and shape check.
      const refusal = (fake) => {
        try {
          checkResetSupport(fake);
          return null;
        } catch (err) {
          return { code: err.code, message: err.message };
        }
      };
      out.realAccepted = refusal(pyodide) === null;
      out.otherVersion = refusal({ version: '0.27.0', _module: pyodide._module });
      const partial = Object.create(M);
      Object.defineProperty(partial, 'FS', { value: { ...M.FS, nameTable: undefined } });
      Object.defineProperty(partial, '__hiwire_set', { value: undefined });
      out.missingInternals = refusal({ version: pyodide.version, _module: partial });

      // Calling a function-table slot past the image's length traps, last: Pyodide dies of it.
      // The run's promise never settles then, so it is raced against a timer.
      process.on('unhandledRejection', () => {});
      const call = run('import ctypes\\nctypes.CFUNCTYPE(ctypes.c_int)(' + image.tableLength + ')()').then(
        (r) => (r.ok ? 'returned' : 'python-error: ' + r.error.message),
        (err) => 'threw: ' + String(err.message ?? err),
      );
      const timer = new Promise((resolve) => hostTimers.setTimeout(() => resolve('unsettled'), 2000));
      out.tableCall = await Promise.race([call, timer]);
      out.abortedAfterTableCall = pyodideAborted(pyodide);`);
  });

  it('linear memory is byte-equal to the image right after a reset, grown memory included', () => {
    assert.equal(out.matchesAtCapture, true);
    assert.equal(out.leakyOk, true);
    assert.equal(out.dirtyBeforeReset, true);
    assert.ok((out.grewBy as number) > 0, 'the leaky run grew the heap');
    assert.equal(out.matchesAfterReset, true);
  });

  it('empties the JS-reference slots an earlier run filled, so no later run can read them by index', () => {
    assert.ok((out.slotsBeforeReset as number) > 0, 'the run used JS-reference slots past the image');
    assert.equal(out.slotsAfterReset, 0);
  });

  it("forced garbage collection of many of an earlier run's proxies leaves memory unchanged", () => {
    assert.equal(out.proxies, 5000);
    assert.equal(out.matchesAfterGc, true);
  });

  it('ctypes reading a pointer saved by the earlier run sees the image bytes', () => {
    assert.equal(out.pointerRead, out.pointerExpected);
    assert.doesNotMatch(Buffer.from(String(out.pointerRead), 'hex').toString('latin1'), /SECRET/);
  });

  it('a reset that cannot be done throws', () => {
    assert.equal(out.badResetThrew, true);
  });

  it('refuses another Pyodide version and missing internals with reset_unsupported', () => {
    assert.equal(out.realAccepted, true);
    const other = out.otherVersion as { code: string; message: string };
    assert.equal(other.code, 'reset_unsupported');
    assert.match(other.message, /Pyodide 0\.27\.0 .*exactly 314\.0\.7/);
    assert.match(other.message, /TASKS_PYTHON__ISOLATION=restore/);
    const missing = out.missingInternals as { code: string; message: string };
    assert.equal(missing.code, 'reset_unsupported');
    assert.match(missing.message, /FS\.nameTable/);
    assert.match(missing.message, /the hiwire table/);
  });

  it("calling a table slot at the image's length traps: Pyodide declares itself dead", () => {
    assert.notEqual(out.tableCall, 'returned');
    assert.equal(out.abortedAfterTableCall, true);
  });
});
