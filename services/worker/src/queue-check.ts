// A worker must not consume a queue it has no handler for: it would pull messages it cannot run.
// Checked at boot, before connecting anywhere.
import { QUEUES, type QueueName, type TaskName, tasksOfQueue } from '@neuroagent/contracts';

/** The message for the first queue without a task handler, or null when every queue is served. */
export function unservedQueueMessage(
  queues: readonly QueueName[],
  tasksOf: (queue: QueueName) => readonly TaskName[] = tasksOfQueue,
): string | null {
  const served = QUEUES.filter((q) => tasksOf(q).length > 0);
  const unserved = queues.find((q) => tasksOf(q).length === 0);
  if (unserved === undefined) return null;
  return `queue ${unserved} has no task handler in this build; set TASKS_QUEUES to some of: ${served.join(', ')}`;
}
