// The consumer's decision for one delivery, on its own: no NATS, no Redis, every branch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BeginState } from '@neuroagent/platform';
import { blockerOf, decideDelivery } from '../src/delivery.ts';

const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);
const facts = (over: Partial<Parameters<typeof blockerOf>[0]> = {}) => ({
  task: 'echo',
  startBy: NOW + 1000,
  now: NOW,
  hasHandler: true,
  ...over,
});

describe('blockerOf(facts)', () => {
  it('lets a task with a handler start before its deadline', () => {
    assert.equal(blockerOf(facts()), null);
    assert.equal(blockerOf(facts({ startBy: NOW })), null, 'the deadline instant itself still starts');
  });

  it('blocks a task past its deadline as expired, naming the deadline', () => {
    const b = blockerOf(facts({ startBy: NOW - 1 }));
    assert.equal(b?.code, 'expired');
    assert.match(b?.message ?? '', /2026-12-06T11:59:59\.999Z/);
  });

  it('blocks a task nobody here can run as unknown_task; expiry is reported first', () => {
    assert.equal(blockerOf(facts({ hasHandler: false }))?.code, 'unknown_task');
    assert.equal(blockerOf(facts({ hasHandler: false, startBy: NOW - 1 }))?.code, 'expired');
  });
});

describe('decideDelivery(state, blocker)', () => {
  const expired = { code: 'expired' as const, message: 'late' };

  it('acks a duplicate whatever else holds: a finished task never runs twice', () => {
    assert.deepEqual(decideDelivery('duplicate', null), { action: 'ack_duplicate' });
    assert.deepEqual(decideDelivery('duplicate', expired), { action: 'ack_duplicate' });
  });

  it('records a cancel that came before the start, even for an expired task', () => {
    assert.deepEqual(decideDelivery('cancelled', null), { action: 'record_cancelled' });
    assert.deepEqual(decideDelivery('cancelled', expired), { action: 'record_cancelled' });
  });

  it("records a blocked task as failed with the blocker's code", () => {
    assert.deepEqual(decideDelivery('blocked', expired), {
      action: 'record_failed',
      code: 'expired',
      message: 'late',
    });
  });

  it('runs a started task, and never a blocked one without a reason', () => {
    assert.deepEqual(decideDelivery('started', null), { action: 'run' });
    const states: BeginState[] = ['duplicate', 'cancelled', 'blocked', 'started'];
    for (const state of states) {
      const d = decideDelivery(state, expired);
      assert.notEqual(d.action, 'run', `${state} with a blocker must not run`);
    }
    assert.equal(decideDelivery('blocked', null).action, 'record_failed');
  });
});
