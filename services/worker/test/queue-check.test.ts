import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QueueName, TaskName } from '@neuroagent/contracts';
import { unservedQueueMessage } from '../src/queue-check.ts';

describe('unservedQueueMessage', () => {
  it('accepts queues that have task handlers in this build', () => {
    assert.equal(unservedQueueMessage(['python_q', 'circuit_q']), null);
  });

  it('names the queue without a handler and the queues that have one', () => {
    const onlyPython = (q: QueueName): TaskName[] => (q === 'python_q' ? ['run_python'] : []);
    assert.equal(
      unservedQueueMessage(['python_q', 'circuit_q'], onlyPython),
      'queue circuit_q has no task handler in this build; set TASKS_QUEUES to some of: python_q',
    );
  });
});
