import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { createValidator, newTaskId, taskIdTime, ValidationError } from '../src/index.ts';

describe('newTaskId', () => {
  it('is a UUIDv7 carrying its creation time, sortable by time', () => {
    const t = Date.UTC(2026, 10, 24, 12, 0, 0);
    const id = newTaskId(t);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(taskIdTime(id), t);
    assert.ok(newTaskId(t) < newTaskId(t + 1));
    assert.notEqual(newTaskId(t), newTaskId(t));
  });
});

describe('createValidator', () => {
  const v = createValidator(Type.Object({ a: Type.String(), when: Type.String({ format: 'date-time' }) }));

  it('parses valid values and names each invalid field', () => {
    assert.deepEqual(v.parse({ a: 'x', when: '2026-11-24T10:00:00.000Z' }), {
      a: 'x',
      when: '2026-11-24T10:00:00.000Z',
    });
    assert.throws(
      () => v.parse({ a: 1, when: 'yesterday' }, 'body'),
      (err: unknown) =>
        err instanceof ValidationError &&
        err.details?.some((d) => d.path === '/a') === true &&
        err.details?.some((d) => d.path === '/when') === true &&
        /invalid body/.test(err.message),
    );
  });
});
