// The run gate on its own, in a fresh Node process (it replaces that process's globals) with
// --expose-gc, so that finalizers can be forced: Pyodide's FinalizationRegistry runs _Py_DecRef,
// and so Python __del__ code, when V8 collects an old proxy, which no test can time from Python.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const GUARDS = new URL('../src/python/thread-guards.ts', import.meta.url).href;

async function inFreshProcess(body: string): Promise<unknown> {
  const script = `
    import { gateRunCallbacks, hostTimers, outsideRuns } from ${JSON.stringify(GUARDS)};
    const gate = gateRunCallbacks();
    const fired = [];
    const settle = async () => {
      for (let i = 0; i < 6; i++) {
        globalThis.gc();
        await new Promise((resolve) => hostTimers.setTimeout(resolve, 30));
      }
    };
    ${body}
    process.stdout.write(JSON.stringify(fired));`;
  const { stdout } = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', script]);
  return JSON.parse(stdout);
}

describe('run gate', () => {
  it("drops an ended run's finalizers and keeps those registered outside runs or in the current run", async () => {
    const fired = await inFreshProcess(`
      const registry = new FinalizationRegistry((v) => fired.push(v));
      gate.begin();
      registry.register({}, 'run 1');
      gate.end();
      registry.register({}, 'between runs');
      gate.begin();
      registry.register({}, 'run 2');
      await settle();
      gate.end();`);
    assert.deepEqual([...(fired as string[])].sort(), ['between runs', 'run 2']);
  });

  it('unregister still works through the wrapped held value', async () => {
    const fired = await inFreshProcess(`
      const registry = new FinalizationRegistry((v) => fired.push(v));
      const token = {};
      registry.register({}, 'unregistered', token);
      registry.unregister(token);
      registry.register({}, 'kept');
      await settle();`);
    assert.deepEqual(fired, ['kept']);
  });

  it("cancels an ended run's timeouts, intervals and immediates, and runs the current run's", async () => {
    const fired = await inFreshProcess(`
      gate.begin();
      setTimeout(() => fired.push('run 1 timeout'), 20);
      setInterval(() => fired.push('run 1 interval'), 10);
      setImmediate(() => fired.push('run 1 immediate'));
      gate.end();
      gate.begin();
      setTimeout(() => fired.push('run 2 timeout'), 20);
      setImmediate((x) => fired.push('run 2 immediate ' + x), 'arg');
      const cleared = setTimeout(() => fired.push('run 2 cleared'), 20);
      clearTimeout(cleared);
      await new Promise((resolve) => hostTimers.setTimeout(resolve, 100));
      gate.end();
      setTimeout(() => fired.push('outside'), 5);
      await new Promise((resolve) => hostTimers.setTimeout(resolve, 50));`);
    assert.deepEqual(fired, ['run 2 immediate arg', 'run 2 timeout', 'outside']);
  });

  it("keeps the thread's own work started during a run (a spare interpreter loading) past the run's end", async () => {
    const fired = await inFreshProcess(`
      const registry = new FinalizationRegistry((v) => fired.push(v));
      gate.begin();
      const loading = outsideRuns(async () => {
        await new Promise((resolve) => setTimeout(resolve, 30));
        setTimeout(() => fired.push('thread timeout'), 10);
        registry.register({}, 'thread finalizer');
        return 'loaded';
      });
      setTimeout(() => fired.push('run timeout'), 30);
      gate.end();
      fired.push(await loading);
      await new Promise((resolve) => hostTimers.setTimeout(resolve, 50));
      await settle();`);
    assert.deepEqual(fired, ['loaded', 'thread timeout', 'thread finalizer']);
  });
});
