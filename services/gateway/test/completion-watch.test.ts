// The completion watch against real Redis, with events written by the same task writer the worker
// uses: it must wake exactly the waiters of tasks that ended, at any number of waiters, on one
// connection that never re-issues its XREAD because a waiter arrived.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connectRedis,
  createLogger,
  createTaskWriter,
  newTaskId,
  type Redis,
  type SubmittedMeta,
} from '@neuroagent/platform';
import { TEST_REDIS_URL, testNamespace } from '@neuroagent/platform/testing';
import { type CompletionWatch, createCompletionWatch } from '../src/completion-watch.ts';

const log = createLogger('watch-test', 'silent');
const meta: SubmittedMeta = {
  owner: 'u',
  queue: 'echo_q',
  task: 'echo',
  submittedAt: new Date().toISOString(),
};

describe('completion watch (real Redis)', () => {
  const ns = testNamespace('watch');
  let commands: Redis;
  let blocking: Redis;
  let watch: CompletionWatch;
  const connectionName = `watch-test-${ns.id}`;
  const store = () =>
    createTaskWriter(commands, { names: ns.names, ttlS: 600, progressMaxLen: 100, eventsMaxLen: 100_000 });
  const finish = (id: string, status: 'succeeded' | 'failed' = 'succeeded') =>
    store().writeOutcome(
      id,
      meta,
      status === 'succeeded'
        ? { status, result: 1, finished_at: new Date().toISOString(), attempts: 1 }
        : { status, error: { code: 'x', message: 'x' }, finished_at: new Date().toISOString(), attempts: 1 },
    );
  // Counts this watch's own XREADs (the shared server's commandstats include other clients').
  let xreads = 0;
  const xreadCalls = async () => xreads;

  before(async () => {
    commands = connectRedis(TEST_REDIS_URL, 'watch-test-commands', log);
    // Events from before the watch started must not wake anyone: the tail starts at the end.
    await finish('before-start');
    blocking = connectRedis(TEST_REDIS_URL, connectionName, log);
    const xread = blocking.xread.bind(blocking) as (...args: unknown[]) => Promise<unknown>;
    (blocking as unknown as { xread: typeof xread }).xread = (...args) => {
      xreads++;
      return xread(...args);
    };
    watch = createCompletionWatch({ blocking: [blocking], names: ns.names, blockMs: 5000, count: 100, log });
    await watch.start();
  });
  after(async () => {
    await watch.close();
    const keys = await commands.keys(`${ns.keyPrefix}*`);
    if (keys.length) await commands.del(...keys);
    await commands.quit();
  });

  it('wakes a waiter when its task ends, and not when it merely starts', async () => {
    const id = newTaskId();
    const e = watch.expect(id);
    const settled = e.settled(5000);
    await store().begin(id, meta, 1, 'w', true);
    const early = await Promise.race([settled, new Promise((r) => setTimeout(() => r('pending'), 300))]);
    assert.equal(early, 'pending', 'a started event is not an ending');
    const t0 = performance.now();
    await finish(id, 'failed');
    assert.equal(await settled, true);
    assert.ok(performance.now() - t0 < 1000, 'woken long before the 5 s block ends');
    e.release();
    assert.equal(watch.waiterCount(), 0);
  });

  it('hands over the record that came with the event, and nothing for a malformed one', async () => {
    const id = newTaskId();
    const e = watch.expect(id);
    const record = { id, owner: 'u', task: 'echo', queue: 'echo_q', status: 'succeeded', result: 7 };
    await commands.xadd(
      ns.names.eventsKeys()[0] as string,
      '*',
      'task_id',
      id,
      'status',
      'succeeded',
      'record',
      JSON.stringify(record),
    );
    assert.equal(await e.settled(5000), true);
    assert.deepEqual(e.record(), record);
    e.release();
    const other = newTaskId();
    const f = watch.expect(other);
    await commands.xadd(
      ns.names.eventsKeys()[0] as string,
      '*',
      'task_id',
      other,
      'status',
      'failed',
      'record',
      '{not json',
    );
    assert.equal(await f.settled(5000), true);
    assert.equal(f.record(), null, 'the caller reads the record instead');
    f.release();
  });

  it('does not miss an ending that happens before the caller starts waiting', async () => {
    const id = newTaskId();
    const e = watch.expect(id); // registered before the publish, as the routes do
    await finish(id);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await e.settled(2000), true);
    e.release();
  });

  it('answers false at the timeout, on abort, and for an event of an earlier task', async () => {
    const before = watch.expect('before-start');
    const t0 = performance.now();
    assert.equal(await before.settled(300), false);
    assert.ok(performance.now() - t0 >= 290);
    before.release();
    const ac = new AbortController();
    const e = watch.expect(newTaskId());
    const p = e.settled(10_000, ac.signal);
    ac.abort();
    assert.equal(await p, false);
    e.release();
    assert.equal(watch.waiterCount(), 0);
  });

  it('serves 10,000 waiters on one connection, wakes exactly the ended ones, without re-issuing per waiter', async () => {
    const ids = Array.from({ length: 10_000 }, () => newTaskId());
    const callsBefore = await xreadCalls();
    const expectations = ids.map((id) => watch.expect(id));
    const results = expectations.map((e) => e.settled(30_000));
    assert.equal(watch.waiterCount(), 10_000);
    // A burst larger than one XREAD's COUNT (100 here): the tail reads on until it has caught up.
    const ended = ids.slice(0, 250);
    const tx = commands.pipeline();
    for (const id of ended) {
      tx.xadd(
        ns.names.eventsKeys()[0] as string,
        '*',
        'task_id',
        id,
        'status',
        'succeeded',
        'ts',
        new Date().toISOString(),
      );
    }
    await tx.exec();
    const woken = await Promise.all(results.slice(0, 250));
    assert.ok(woken.every(Boolean), 'every ended task woke its waiter');
    await new Promise((r) => setTimeout(r, 200));
    const stillWaiting = await Promise.race([
      Promise.any(results.slice(250)).then(() => 'woken'),
      new Promise((r) => setTimeout(() => r('waiting'), 200)),
    ]);
    assert.equal(stillWaiting, 'waiting', 'no other waiter woke');
    const calls = (await xreadCalls()) - callsBefore;
    assert.ok(calls < 50, `${calls} XREAD calls for 10,000 waiters and 250 endings`);
    const clients = String(await commands.client('LIST'))
      .split('\n')
      .filter((l) => l.includes(`name=${connectionName}`));
    assert.equal(clients.length, 1, 'one blocking connection for every waiter');
    for (const e of expectations) e.release();
    assert.deepEqual(
      (await Promise.all(results.slice(250, 260))).every((r) => r === false),
      true,
      'a released waiter answers false',
    );
    assert.equal(watch.waiterCount(), 0);
  });

  it('answers every open waiter with false when it closes', async () => {
    const other = createCompletionWatch({
      blocking: [connectRedis(TEST_REDIS_URL, `${connectionName}-2`, log)],
      names: ns.names,
      blockMs: 5000,
      log,
    });
    await other.start();
    const e = other.expect(newTaskId());
    const p = e.settled(30_000);
    await other.close();
    assert.equal(await p, false);
    assert.equal(await other.expect(newTaskId()).settled(1000), false, 'no waiting after close');
  });
});
