// The long-poll hub against real Redis, with events written by the same task writer the worker uses.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTerminalEvent, type TaskEvent } from '@neuroagent/contracts';
import {
  connectRedis,
  createLogger,
  createTaskWriter,
  newTaskId,
  type Redis,
  type SubmittedMeta,
} from '@neuroagent/platform';
import { TEST_REDIS_URL, testNamespace } from '@neuroagent/platform/testing';
import { compareStreamIds, createProgressHub, type ProgressHub } from '../src/progress-hub.ts';

const log = createLogger('hub-test', 'silent');
const meta: SubmittedMeta = {
  owner: 'u',
  queue: 'python_q',
  task: 'run_python',
  submittedAt: new Date().toISOString(),
};

describe('compareStreamIds', () => {
  it('compares numerically, milliseconds first', () => {
    assert.equal(compareStreamIds('2-0', '10-0'), -1);
    assert.equal(compareStreamIds('10-2', '10-10'), -1);
    assert.equal(compareStreamIds('10-1', '10-1'), 0);
    assert.equal(compareStreamIds('0', '0-0'), 0);
  });
});

describe('progress hub (real Redis)', () => {
  const ns = testNamespace('hub');
  let commands: Redis;
  let blocking: Redis;
  let hub: ProgressHub;
  const store = () =>
    createTaskWriter(commands, { names: ns.names, ttlS: 600, progressMaxLen: 100, eventsMaxLen: 1000 });
  const succeed = (id: string) =>
    store().writeOutcome(id, meta, {
      status: 'succeeded',
      result: 1,
      finished_at: new Date().toISOString(),
      attempts: 1,
    });

  /** The first terminal event of a task, or null at the timeout. */
  const waitForTerminal = (id: string, timeoutMs: number) =>
    new Promise<TaskEvent | null>((resolve) => {
      const timer = setTimeout(() => {
        unsubscribe();
        resolve(null);
      }, timeoutMs);
      const unsubscribe = hub.subscribe(id, '0', (e) => {
        if (!isTerminalEvent(e.type)) return;
        clearTimeout(timer);
        unsubscribe();
        resolve(e);
      });
    });

  before(() => {
    commands = connectRedis(TEST_REDIS_URL, 'hub-test-commands', log);
    blocking = connectRedis(TEST_REDIS_URL, `hub-test-blocking-${ns.id}`, log);
    hub = createProgressHub({ blocking, commands, names: ns.names, blockMs: 5000, log });
  });
  after(async () => {
    await hub.close();
    const keys = await commands.keys(`${ns.keyPrefix}*`);
    if (keys.length) await commands.del(...keys);
    blocking.disconnect();
    await commands.quit();
  });

  it('delivers a terminal event written before anyone waited (the original $ race)', async () => {
    const id = newTaskId();
    await store().begin(id, meta, 1, 'w', true);
    await succeed(id);
    const t0 = performance.now();
    const event = await waitForTerminal(id, 5000);
    assert.equal(event?.type, 'done');
    assert.deepEqual(event?.data, { status: 'succeeded' });
    assert.ok(performance.now() - t0 < 1000);
  });

  it('wakes a waiter added while the hub is blocked on other streams, long before the block ends', async () => {
    const a = newTaskId();
    const b = newTaskId();
    const waitA = waitForTerminal(a, 8000);
    await new Promise((r) => setTimeout(r, 200)); // the hub is now blocked in XREAD on A only
    const waitB = waitForTerminal(b, 8000);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    await succeed(b);
    const event = await waitB;
    const wakeMs = performance.now() - t0;
    assert.equal(event?.type, 'done');
    assert.ok(wakeMs < 1000, `woke after ${wakeMs} ms, block is 5000 ms`);
    await succeed(a);
    assert.equal((await waitA)?.type, 'done');
  });

  it('delivers every event in order to a subscriber, from the start of the stream', async () => {
    const id = newTaskId();
    await store().begin(id, meta, 1, 'w', true);
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      const unsubscribe = hub.subscribe(id, '0', (e) => {
        seen.push(e.type);
        if (e.type === 'done') {
          unsubscribe();
          resolve();
        }
      });
    });
    await store().appendProgress(id, { fraction: 0.5 });
    await succeed(id);
    await done;
    assert.deepEqual(seen, ['started', 'progress', 'done']);
  });

  it('returns null at the timeout and forgets the waiter', async () => {
    const t0 = performance.now();
    assert.equal(await waitForTerminal(newTaskId(), 300), null);
    assert.ok(performance.now() - t0 >= 290);
    assert.equal(hub.waiterCount(), 0);
  });

  it('serves many concurrent waiters over its one blocking connection', async () => {
    const ids = Array.from({ length: 300 }, () => newTaskId());
    const waits = ids.map((id) => waitForTerminal(id, 15000));
    assert.equal(hub.waiterCount(), 300);
    for (const id of ids) await succeed(id);
    const events = await Promise.all(waits);
    assert.ok(events.every((e) => e?.type === 'done'));
    const clients = String(await commands.client('LIST'))
      .split('\n')
      .filter((l) => l.includes(`name=hub-test-blocking-${ns.id}`));
    assert.equal(clients.length, 1, 'one blocking connection for every waiter');
  });
});
