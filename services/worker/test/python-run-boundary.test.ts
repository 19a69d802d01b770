// Nothing a run schedules may act after that run ends. Pyodide's event loop schedules through the
// thread's global setTimeout and setImmediate, so a `call_later` or a pending task would otherwise
// outlive the run: a busy callback would steal the next user's time limit, and a state-changing
// one would reach the next run. Through the real pool, on one thread, in both interpreter modes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { startSandbox, type TestSandbox } from './support.ts';

// Schedules, then returns at once: a busy callback longer than the whole time limit, callbacks
// that change state the next run could see, an interval, and a task that is never awaited.
const LEAVE_CALLBACKS_BEHIND = `
import asyncio, builtins, sys, time
loop = asyncio.get_event_loop()
# Default arguments, because the runner clears this run's globals when it ends.
def busy(monotonic=time.monotonic):
    end = monotonic() + 5
    while monotonic() < end:
        pass
def mark(what, builtins=builtins, sys=sys):
    setattr(builtins, "leftover_" + what, True)
    sys.modules["leftover_" + what] = sys
loop.call_later(0.15, busy)
loop.call_later(0.05, mark, "later")
async def pending(sleep=asyncio.sleep, mark=mark, busy=busy):
    await sleep(0.1)
    mark("task")
    busy()
loop.create_task(pending())
"scheduled"
`;

// Gives every leftover callback the chance to fire while this run yields to the event loop.
const NEXT_RUN = `
import asyncio, builtins, sys, time
t0 = time.monotonic()
for _ in range(10):
    await asyncio.sleep(0.08)
seen = sorted(n for n in dir(builtins) if n.startswith("leftover_")) + sorted(n for n in sys.modules if n.startswith("leftover_"))
[seen, round(time.monotonic() - t0, 2)]
`;

function success(r: PythonResult): unknown {
  assert.equal(r.status, 'success', JSON.stringify(r));
  return r.status === 'success' ? r.return_value : undefined;
}

for (const reuse of [false, true]) {
  describe(`run boundary (real pool, one thread, reuse_interpreter=${reuse})`, () => {
    let sandbox: TestSandbox;
    before(async () => {
      sandbox = await startSandbox({
        TASKS_PYTHON__THREADS: '1',
        TASKS_PYTHON__TIMEOUT_S: '3',
        TASKS_PYTHON__KILL_GRACE_MS: '300',
        TASKS_PYTHON__REUSE_INTERPRETER: String(reuse),
        TASKS_PYTHON__RECYCLE_AFTER_RUNS: '100',
      });
    });
    after(() => sandbox?.close());

    it('drops the callbacks and tasks of an ended run; the next run keeps its budget and sees nothing', async () => {
      const pid = sandbox.pid();
      assert.equal(success(await sandbox.run(LEAVE_CALLBACKS_BEHIND)), 'scheduled');
      const [seen, seconds] = success(await sandbox.run(NEXT_RUN)) as [string[], number];
      assert.deepEqual(seen, [], 'a callback of the previous run changed state');
      // Ten 80 ms sleeps; a leftover busy callback would add 5 s (and exceed the 3 s limit).
      assert.ok(seconds < 2.5, `the next run took ${seconds} s`);
      assert.equal(success(await sandbox.run('1 + 1')), 2);
      assert.equal(sandbox.pid(), pid, 'the sandbox process lives on');
    });

    it('still runs a run’s own callbacks and tasks while it lasts', async () => {
      const code = `
import asyncio
loop = asyncio.get_event_loop()
out = []
loop.call_later(0.05, out.append, "later")
loop.call_soon(out.append, "soon")
async def job():
    await asyncio.sleep(0.01)
    out.append("task")
t = loop.create_task(job())
await asyncio.sleep(0.2)
await t
sorted(out)`;
      assert.deepEqual(success(await sandbox.run(code)), ['later', 'soon', 'task']);
    });
  });
}
