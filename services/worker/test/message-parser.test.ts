import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNames } from '@neuroagent/contracts';
import { createTaskSigner, parseTaskMessage } from '@neuroagent/platform';
import { retryDelayMs } from '../src/backoff.ts';

import { OutputCapture } from '../src/python/output-capture.ts';

const names = createNames({ stream: 'TASKS', subjectPrefix: 'tasks', keyPrefix: '' });
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const signer = createTaskSigner('k'.repeat(32));
/** Parses as the consumer does, with a valid signature for the subject's task id and the body. */
const parse = (subject: string, data: Uint8Array) =>
  parseTaskMessage(subject, data, names, {
    signer,
    header: signer.sign(subject.split('.')[2] ?? '', data),
  });
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
    const r = parse('tasks.python_q.id-1', enc(valid));
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
      const r = parse(subject, data);
      assert.ok(!r.ok, subject);
      assert.equal(r.reason, reason, subject);
      assert.equal(r.taskId, subject.split('.')[2]);
    }
  });

  it('has no task id for a subject that is not a task subject', () => {
    const r = parse('tasks.python_q', enc(valid));
    assert.ok(!r.ok);
    assert.equal(r.taskId, null);
  });

  it('refuses a missing, malformed, forged, moved or altered signature as bad_signature, before parsing', () => {
    const subject = 'tasks.python_q.id-8';
    const body = enc({ ...valid, userId: 'victim' });
    const other = createTaskSigner('o'.repeat(32));
    const headers: [string, string | undefined][] = [
      ['no header', undefined],
      ['not v1', 'v2=abc'],
      ['two values', `${signer.sign('id-8', body)}=x`],
      ['another key', other.sign('id-8', body)],
      ['another task id', signer.sign('id-9', body)],
      ['another body', signer.sign('id-8', enc(valid))],
    ];
    for (const [what, header] of headers) {
      const r = parseTaskMessage(subject, body, names, { signer, header });
      assert.ok(!r.ok, what);
      assert.equal(r.reason, 'bad_signature', what);
      assert.equal(r.envelope, null, `${what}: nothing of the body is believed`);
    }
    // Even a body that is not JSON is bad_signature first: an unsigned body is never parsed.
    const junk = parseTaskMessage(subject, enc('{not json'), names, { signer, header: undefined });
    assert.equal(!junk.ok && junk.reason, 'bad_signature');
  });

  it('accepts a signature made with a previous key during a rotation', () => {
    const old = createTaskSigner('p'.repeat(32));
    const rotated = createTaskSigner('n'.repeat(32), ['p'.repeat(32)]);
    const data = enc(valid);
    const r = parseTaskMessage('tasks.python_q.id-10', data, names, {
      signer: rotated,
      header: old.sign('id-10', data),
    });
    assert.ok(r.ok);
    assert.ok(rotated.sign('id-10', data) !== old.sign('id-10', data), 'the new key signs');
  });

  it('names the failing input field', () => {
    const r = parse('tasks.python_q.id-7', enc({ ...valid, input: {} }));
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
