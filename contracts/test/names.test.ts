import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNames, isTaskId, TASKS, tasksOfQueue } from '../src/index.ts';

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
    assert.equal(names.progressKey('id1'), 'task:id1:progress');
    assert.equal(names.resultKey('id1'), 'task:id1:result');
    assert.equal(names.metaKey('id1'), 'task:id1:meta');
    assert.equal(names.cancelKey('id1'), 'task:id1:cancel');
    assert.equal(names.eventsKey(), 'tasks:events');
    assert.equal(p.progressKey('id1'), 'test:1:task:id1:progress');
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
