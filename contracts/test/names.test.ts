import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNames, eventsShardOf, isTaskId, TASKS, tasksOfQueue } from '../src/index.ts';

describe('createNames', () => {
  const names = createNames({ stream: 'TASKS', subjectPrefix: 'tasks', keyPrefix: '' });

  it('builds subjects as <prefix>.<queue>.<task id> and filters per queue', () => {
    assert.equal(names.taskSubject('python_q', 'abc'), 'tasks.python_q.abc');
    assert.equal(names.queueFilter('circuit_q'), 'tasks.circuit_q.>');
    assert.equal(names.streamSubjects, 'tasks.>');
    assert.equal(names.consumerName('python_q'), 'python_q');
  });

  it('keeps dead letters and cancels outside the task stream', () => {
    assert.equal(names.dlqStream, 'TASKS_DLQ');
    assert.equal(names.dlqSubject('tasks.python_q.abc'), 'dlq.tasks.python_q.abc');
    assert.ok(!names.dlqSubject('tasks.python_q.abc').startsWith('tasks.'));
    assert.equal(names.cancelSubject('abc'), 'ctl.cancel.abc');
  });

  it('parses a task subject back, including with a multi-token prefix', () => {
    assert.deepEqual(names.parseTaskSubject('tasks.python_q.abc'), { queue: 'python_q', taskId: 'abc' });
    assert.equal(names.parseTaskSubject('tasks.python_q'), null);
    assert.equal(names.parseTaskSubject('tasks.python_q.a.b'), null);
    assert.equal(names.parseTaskSubject('other.python_q.abc'), null);
    const nested = createNames({ stream: 'T', subjectPrefix: 'env.prod.tasks', keyPrefix: 'p:' });
    assert.deepEqual(nested.parseTaskSubject('env.prod.tasks.circuit_q.x1'), {
      queue: 'circuit_q',
      taskId: 'x1',
    });
  });

  it('names the Redis keys of the task store, under the key prefix', () => {
    const p = createNames({ stream: 'T', subjectPrefix: 't', keyPrefix: 'test:1:' });
    assert.equal(names.progressKey('id1'), 'task:{id1}:progress');
    assert.equal(names.resultKey('id1'), 'task:{id1}:result');
    assert.equal(names.metaKey('id1'), 'task:{id1}:meta');
    assert.equal(names.cancelKey('id1'), 'task:{id1}:cancel');
    assert.deepEqual(names.eventsKeys(), ['tasks:events']);
    assert.equal(names.eventsKeyOf('id1'), 'tasks:events');
    assert.equal(p.progressKey('id1'), 'test:1:task:{id1}:progress');
  });

  it('gives every key of one task the task id as its Redis Cluster hash tag', () => {
    // Redis hashes only the part between the first `{` and the next `}` when it is not empty.
    const tag = (key: string) => key.slice(key.indexOf('{') + 1, key.indexOf('}'));
    const p = createNames({ stream: 'T', subjectPrefix: 't', keyPrefix: 'tenant:a:' });
    for (const key of [p.progressKey('x-1'), p.resultKey('x-1'), p.metaKey('x-1'), p.cancelKey('x-1')])
      assert.equal(tag(key), 'x-1', key);
  });

  it('shards tasks:events by task id, each shard its own hash tag, stably', () => {
    const p = createNames({ stream: 'T', subjectPrefix: 't', keyPrefix: 'k:', eventsShards: 4 });
    assert.deepEqual(p.eventsKeys(), [
      'k:tasks:events:{0}',
      'k:tasks:events:{1}',
      'k:tasks:events:{2}',
      'k:tasks:events:{3}',
    ]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const key = p.eventsKeyOf(`task-${i}`);
      assert.ok(p.eventsKeys().includes(key));
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const [key, n] of counts) assert.ok(n > 800 && n < 1200, `${key}: ${n} of 4000`);
    assert.equal(
      eventsShardOf('01a20bb6-e42b-757d-a315-8df806a8c663', 4),
      eventsShardOf('01a20bb6-e42b-757d-a315-8df806a8c663', 4),
    );
    assert.equal(eventsShardOf('abc', 7), 5, 'pinned: a change would strand entries on the old shard');
    for (const bad of [0, -1, 1.5, 1025])
      assert.throws(
        () => createNames({ stream: 'T', subjectPrefix: 't', keyPrefix: '', eventsShards: bad }),
        RangeError,
      );
  });
});

describe('isTaskId', () => {
  it('accepts UUIDs and rejects subject wildcards, dots and empty ids', () => {
    assert.ok(isTaskId('01a20bb6-e42b-757d-a315-8df806a8c663'));
    for (const bad of ['', 'a.b', '*', '>', 'a b', 'x'.repeat(65)]) assert.ok(!isTaskId(bad), bad);
  });
});

describe('TASKS registry', () => {
  it('routes run_python to python_q', () => {
    assert.equal(TASKS.run_python.queue, 'python_q');
    assert.deepEqual(tasksOfQueue('python_q'), ['run_python']);
  });
});
