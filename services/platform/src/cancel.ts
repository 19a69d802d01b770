// Cancelling a task (docs/reliability.md): a Redis flag that a worker checks before it starts the task, and
// a broadcast on core NATS `ctl.cancel.<id>` (outside the TASKS stream, so cancels never enter the
// job log) that interrupts it if it is already running. The flag is written first, so a task
// that starts between the two steps still sees it.
import type { NatsConnection } from '@nats-io/nats-core';
import type { Names } from '@neuroagent/contracts';
import type { TaskReader } from './task-reader.ts';

export async function requestCancel(
  nc: NatsConnection,
  store: Pick<TaskReader, 'flagCancel'>,
  names: Names,
  taskId: string,
): Promise<void> {
  await store.flagCancel(taskId);
  nc.publish(names.cancelSubject(taskId));
  await nc.flush();
}
