// TaskWriter.begin(): the worker's one-round-trip check-and-mark before a run, against real Redis.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connectRedis,
  createLogger,
  createTaskReader,
  createTaskWriter,
  newTaskId,
  type Redis,
  ReplicationLagError,
  type SubmittedMeta,
} from '../src/index.ts';
import { TEST_REDIS_URL, testNamespace } from '../src/testing.ts';

const meta: SubmittedMeta = {
  owner: 'olga',
  queue: 'echo_q',
  task: 'echo',
  submittedAt: '2026-11-24T10:00:00.000Z',
};

describe('TaskWriter.begin (real Redis)', () => {
  const ns = testNamespace('store');
  let redis: Redis;
  const store = () =>
    createTaskWriter(redis, { names: ns.names, ttlS: 600, progressMaxLen: 100, eventsMaxLen: 1000 });
  const eventsOf = async (id: string) =>
    (await redis.xrange(ns.names.eventsKeys()[0] as string, '-', '+'))
      .filter(([, f]) => f[1] === id)
      .map(([, f]) => f);

  before(() => {
    redis = connectRedis(TEST_REDIS_URL, 'store-test', createLogger('store-test', 'silent'));
  });
  after(async () => {
    const keys = await redis.keys(`${ns.keyPrefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('writes the meta of a submitted task with its fields and its TTL in one command', async () => {
    const id = newTaskId();
    const reader = createTaskReader(redis, { names: ns.names, ttlS: 321 });
    await reader.writeSubmitted(id, { ...meta, threadId: 'th-1', requestId: 'rq-1' });
    assert.deepEqual(await redis.hgetall(ns.names.metaKey(id)), {
      owner: 'olga',
      queue: 'echo_q',
      task: 'echo',
      status: 'pending',
      submitted_at: meta.submittedAt,
      attempts: '0',
      thread_id: 'th-1',
      request_id: 'rq-1',
    });
    const ttl = await redis.ttl(ns.names.metaKey(id));
    assert.ok(ttl > 300 && ttl <= 321, `ttl ${ttl}`);
    // A second reader on the same connection reuses the script it defined.
    const again = newTaskId();
    await createTaskReader(redis, { names: ns.names, ttlS: 50 }).writeSubmitted(again, meta);
    assert.ok((await redis.ttl(ns.names.metaKey(again))) <= 50);
    assert.equal((await reader.readRecord(id))?.status, 'pending');
  });

  it('marks a task started: meta, a started progress event and a running tasks:events entry', async () => {
    const id = newTaskId();
    assert.equal(await store().begin(id, meta, 2, 'host:1', true), 'started');
    const m = await redis.hgetall(ns.names.metaKey(id));
    assert.equal(m.owner, 'olga');
    assert.equal(m.status, 'running');
    assert.equal(m.attempts, '2');
    assert.equal(m.submitted_at, meta.submittedAt);
    assert.ok((await redis.ttl(ns.names.metaKey(id))) > 0);
    const progress = await redis.xrange(ns.names.progressKey(id), '-', '+');
    assert.equal(progress.length, 1);
    const fields = progress[0]?.[1] ?? [];
    assert.equal(fields[1], 'started');
    assert.deepEqual(JSON.parse(fields[fields.indexOf('data') + 1] ?? 'null'), {
      attempt: 2,
      worker: 'host:1',
    });
    const [event] = await eventsOf(id);
    assert.ok(event);
    const get = (k: string) => event[event.indexOf(k) + 1];
    assert.equal(get('status'), 'running');
    assert.equal(get('owner'), 'olga');
    assert.equal(get('queue'), 'echo_q');
    assert.equal(get('attempt'), '2');
  });

  it('writes an outcome in one script: result with its TTL, meta, the error progress entry, the terminal event', async () => {
    const id = newTaskId();
    await redis.hset(ns.names.metaKey(id), 'owner', 'gateway-owner');
    const finished = new Date().toISOString();
    const outcome = {
      status: 'failed' as const,
      error: { code: 'handler_error', message: 'boom' },
      finished_at: finished,
      attempts: 3,
    };
    await store().writeOutcome(id, meta, outcome);
    assert.deepEqual(JSON.parse((await redis.get(ns.names.resultKey(id))) ?? 'null'), outcome);
    const ttl = await redis.ttl(ns.names.resultKey(id));
    assert.ok(ttl > 590 && ttl <= 600, `result ttl ${ttl}`);
    const m = await redis.hgetall(ns.names.metaKey(id));
    assert.equal(m.owner, 'gateway-owner', 'the owner already recorded is kept');
    assert.equal(m.submitted_at, meta.submittedAt);
    assert.equal(m.status, 'failed');
    assert.equal(m.finished_at, finished);
    assert.equal(m.attempts, '3');
    assert.ok((await redis.ttl(ns.names.metaKey(id))) > 0);
    const progress = await redis.xrange(ns.names.progressKey(id), '-', '+');
    const last = progress.at(-1)?.[1] ?? [];
    assert.equal(last[1], 'error');
    assert.deepEqual(JSON.parse(last[last.indexOf('data') + 1] ?? 'null'), {
      status: 'failed',
      code: 'handler_error',
    });
    assert.ok((await redis.ttl(ns.names.progressKey(id))) > 0);
    const [event] = await eventsOf(id);
    assert.ok(event, 'a terminal tasks:events entry');
    const get = (k: string) => event[event.indexOf(k) + 1];
    assert.equal(get('status'), 'failed');
    assert.equal(get('code'), 'handler_error');
    assert.equal(get('owner'), 'olga');
  });

  it('keeps an owner already recorded by the gateway', async () => {
    const id = newTaskId();
    await redis.hset(ns.names.metaKey(id), 'owner', 'gateway-owner');
    await store().begin(id, meta, 1, 'w', true);
    assert.equal(await redis.hget(ns.names.metaKey(id), 'owner'), 'gateway-owner');
  });

  it('reports a duplicate (result exists), a cancel, or a blocked start without writing anything', async () => {
    const dup = newTaskId();
    await store().writeOutcome(dup, meta, {
      status: 'succeeded',
      result: 1,
      finished_at: new Date().toISOString(),
      attempts: 1,
    });
    const progressBefore = await redis.xlen(ns.names.progressKey(dup));
    assert.equal(await store().begin(dup, meta, 2, 'w', true), 'duplicate');
    assert.equal(await redis.xlen(ns.names.progressKey(dup)), progressBefore);
    assert.equal(await redis.hget(ns.names.metaKey(dup), 'status'), 'succeeded');

    const cancelled = newTaskId();
    await createTaskReader(redis, { names: ns.names, ttlS: 600 }).flagCancel(cancelled);
    assert.equal(await store().begin(cancelled, meta, 1, 'w', true), 'cancelled');
    assert.equal(await redis.exists(ns.names.progressKey(cancelled)), 0);

    const blocked = newTaskId();
    assert.equal(await store().begin(blocked, meta, 1, 'w', false), 'blocked');
    assert.equal(await redis.exists(ns.names.metaKey(blocked)), 0);
    assert.deepEqual(await eventsOf(blocked), []);
  });

  it('puts a small finished record in the terminal tasks:events entry, equal to readRecord()', async () => {
    const inline = createTaskWriter(redis, {
      names: ns.names,
      ttlS: 600,
      progressMaxLen: 100,
      eventsMaxLen: 1000,
      recordInlineMaxBytes: 1024,
    });
    const id = newTaskId();
    const startedAt = new Date().toISOString();
    await inline.begin(id, meta, 1, 'w', true, startedAt);
    const outcome = {
      status: 'succeeded' as const,
      result: { payload: 'p' },
      finished_at: new Date().toISOString(),
      attempts: 1,
    };
    await inline.writeOutcome(id, meta, outcome, startedAt);
    const terminal = (await eventsOf(id)).find((f) => f[3] === 'succeeded') ?? [];
    const record = JSON.parse(terminal[terminal.indexOf('record') + 1] ?? 'null');
    assert.deepEqual(record, await createTaskReader(redis, { names: ns.names, ttlS: 600 }).readRecord(id));

    const big = newTaskId();
    await inline.begin(big, meta, 1, 'w', true, startedAt);
    await inline.writeOutcome(big, meta, { ...outcome, result: 'x'.repeat(2000) }, startedAt);
    const bigTerminal = (await eventsOf(big)).find((f) => f[3] === 'succeeded') ?? [];
    assert.ok(!bigTerminal.includes('record'), 'too large: the gateway reads it back instead');
    const unstarted = newTaskId();
    await inline.writeOutcome(unstarted, meta, outcome);
    assert.ok(!((await eventsOf(unstarted))[0] ?? []).includes('record'), 'no startedAt: no record');
  });

  it('refuses to return before a replica holds the outcome when WAIT_REPLICAS asks for one', async () => {
    // The shared test server has no replica: WAIT 1 times out, and the caller must retry, not ack.
    const waiting = createTaskWriter(redis, {
      names: ns.names,
      ttlS: 600,
      progressMaxLen: 100,
      eventsMaxLen: 1000,
      waitReplicas: 1,
      waitTimeoutMs: 50,
    });
    const id = newTaskId();
    const outcome = {
      status: 'succeeded' as const,
      result: 1,
      finished_at: new Date().toISOString(),
      attempts: 1,
    };
    await assert.rejects(waiting.writeOutcome(id, meta, outcome), (err: unknown) => {
      assert.ok(err instanceof ReplicationLagError);
      assert.equal(err.code, 'redis_replication_lag');
      assert.equal(err.retryable, true);
      return true;
    });
    // The write itself happened; the redelivery sees it as a duplicate and waits again before its ack.
    await assert.rejects(waiting.begin(id, meta, 2, 'host:1', true), ReplicationLagError);
    assert.equal(await store().begin(id, meta, 2, 'host:1', true), 'duplicate');
  });

  it('records a dead letter’s failure only for a task without an outcome, never over a result', async () => {
    const id = newTaskId();
    const done = {
      status: 'succeeded' as const,
      result: 7,
      finished_at: new Date().toISOString(),
      attempts: 1,
    };
    await store().writeOutcome(id, meta, done);
    const failure = {
      status: 'failed' as const,
      error: { code: 'max_deliveries', message: 'gave up' },
      finished_at: new Date().toISOString(),
      attempts: 5,
    };
    assert.equal(await store().recordFailureUnlessFinished(id, meta, failure), false);
    const reader = createTaskReader(redis, { names: ns.names, ttlS: 600 });
    assert.deepEqual(await reader.readOutcome(id), done);
    const fresh = newTaskId();
    assert.equal(await store().recordFailureUnlessFinished(fresh, meta, failure), true);
    assert.equal((await reader.readOutcome(fresh))?.status, 'failed');
  });
});
