import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNames } from '@neuroagent/contracts';
import { retryDelayMs } from '../src/backoff.ts';
import { parseTaskMessage } from '../src/message-parser.ts';
import { OutputCapture } from '../src/python/output-capture.ts';

const names = createNames({ stream: 'TASKS', subjectPrefix: 'tasks', keyPrefix: '' });
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const valid = {
  v: 1,
  queue: 'python_q',
  task: 'run_python',
  input: { python_script: '1+1' },
  userId: 'alice',
  submittedAt: '2026-11-24T10:00:00.000Z',
  startWithinS: 3600,
};

describe('parseTaskMessage', () => {
  it('accepts a valid envelope and takes the task id from the subject', () => {
    const r = parseTaskMessage('tasks.python_q.id-1', enc(valid), names);
    assert.ok(r.ok);
    assert.equal(r.taskId, 'id-1');
    assert.equal(r.task, 'run_python');
  });

  it('classifies poison messages with a reason, keeping the task id when the subject has one', () => {
    const cases: [string, Uint8Array, string][] = [
      ['tasks.python_q.id-2', enc('{not json'), 'invalid_message'],
      ['tasks.python_q.id-3', enc({ ...valid, v: 2 }), 'invalid_message'],
      ['tasks.python_q.id-4', enc({ ...valid, task: 'nope' }), 'unknown_task'],
      ['tasks.python_q.id-5', enc({ ...valid, input: { python_script: 7 } }), 'invalid_input'],
      ['tasks.circuit_q.id-6', enc(valid), 'invalid_message'],
    ];
    for (const [subject, data, reason] of cases) {
      const r = parseTaskMessage(subject, data, names);
      assert.ok(!r.ok, subject);
      assert.equal(r.reason, reason, subject);
      assert.equal(r.taskId, subject.split('.')[2]);
    }
  });

  it('has no task id for a subject that is not a task subject', () => {
    const r = parseTaskMessage('tasks.python_q', enc(valid), names);
    assert.ok(!r.ok);
    assert.equal(r.taskId, null);
  });

  it('names the failing input field', () => {
    const r = parseTaskMessage('tasks.python_q.id-7', enc({ ...valid, input: {} }), names);
    assert.ok(!r.ok);
    assert.match(r.detail, /input\/python_script/);
  });
});

describe('retryDelayMs', () => {
  it('doubles per delivery within ±25 % and is capped', () => {
    assert.equal(
      retryDelayMs(1, 1000, 60000, () => 0.5),
      1000,
    );
    assert.equal(
      retryDelayMs(3, 1000, 60000, () => 0.5),
      4000,
    );
    assert.equal(
      retryDelayMs(3, 1000, 60000, () => 1),
      5000,
    );
    assert.equal(
      retryDelayMs(3, 1000, 60000, () => 0),
      3000,
    );
    assert.equal(
      retryDelayMs(20, 1000, 60000, () => 1),
      60000,
    );
  });
});

describe('OutputCapture', () => {
  it('keeps lines up to the byte cap, then drops the rest behind one marker', () => {
    const c = new OutputCapture(10);
    for (const line of ['abcd', 'efgh', 'ijkl', 'm']) c.push(line);
    assert.ok(c.truncated);
    assert.deepEqual(c.result().slice(0, 2), ['abcd', 'efgh']);
    assert.match(c.result()[2] ?? '', /^\[output truncated: 7 bytes over the 10-byte limit dropped\]$/);
  });
});
