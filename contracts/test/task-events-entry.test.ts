// The tasks:events codec: what the worker writes is what both gateway readers get back, and
// whatever else sits on the stream (written by hand, or by an attacker) is checked field by field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeTaskEventsEntry,
  encodeTaskEventsEntry,
  isTaskStatus,
  type TaskEventsEntry,
} from '../src/index.ts';

describe('tasks:events entry codec', () => {
  it('round-trips every field, in the order the stream has always carried them', () => {
    const entry: TaskEventsEntry = {
      taskId: 't-1',
      status: 'succeeded',
      ts: '2026-12-06T10:00:00.000Z',
      queue: 'python_q',
      task: 'run_python',
      owner: 'alice',
      submittedAt: '2026-12-06T09:59:59.000Z',
      code: 'x',
      attempt: 2,
      tokenConsumption: { total: 3 },
      storageIds: ['a', 'b'],
      record: '{"id":"t-1"}',
    };
    const fields = encodeTaskEventsEntry(entry);
    assert.deepEqual(
      fields.filter((_, i) => i % 2 === 0),
      [
        'task_id',
        'status',
        'ts',
        'queue',
        'task',
        'owner',
        'submitted_at',
        'code',
        'attempt',
        'token_consumption',
        'storage_ids',
        'record',
      ],
    );
    assert.deepEqual(decodeTaskEventsEntry('1-0', fields), entry);
  });

  it('leaves out absent and empty values', () => {
    const fields = encodeTaskEventsEntry({
      taskId: 't-1',
      status: 'running',
      ts: 'now',
      task: '',
      owner: undefined,
      storageIds: [],
    });
    assert.deepEqual(fields, ['task_id', 't-1', 'status', 'running', 'ts', 'now']);
  });

  it('refuses an entry without a valid task id or status, and drops fields that do not fit', () => {
    assert.equal(decodeTaskEventsEntry('1-0', ['task_id', 'a b', 'status', 'running']), null);
    assert.equal(decodeTaskEventsEntry('1-0', ['task_id', 't1', 'status', 'done']), null);
    assert.equal(decodeTaskEventsEntry('1-0', ['status', 'running']), null);
    const e = decodeTaskEventsEntry('1700000000000-0', [
      'task_id',
      't1',
      'status',
      'failed',
      'ts',
      'not a date',
      'queue',
      'no_such_q',
      'owner',
      'x'.repeat(256),
      'code',
      'c'.repeat(100),
      'attempt',
      '-1',
      'token_consumption',
      '[1]',
      'storage_ids',
      '[1, 2]',
    ]);
    assert.deepEqual(e, {
      taskId: 't1',
      status: 'failed',
      ts: new Date(1700000000000).toISOString(),
      code: 'c'.repeat(64),
    });
  });

  it('isTaskStatus knows exactly the five statuses', () => {
    for (const s of ['pending', 'running', 'succeeded', 'failed', 'cancelled'])
      assert.equal(isTaskStatus(s), true);
    for (const s of ['done', '', undefined, 3, 'RUNNING']) assert.equal(isTaskStatus(s), false);
  });
});
