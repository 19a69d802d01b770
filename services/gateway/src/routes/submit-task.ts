// Submitting a task from a route, optionally waiting for it to end: shared by POST /tasks?wait=
// and the tool routes. The waiter is registered before the publish, so even an instant result
// cannot be missed, and the record usually comes with the worker's event (no read back).
import type { TaskName, TaskRecord } from '@neuroagent/contracts';
import { isTerminal } from '@neuroagent/contracts';
import { newTaskId } from '@neuroagent/platform';
import type { Context } from 'koa';
import type { AppDeps } from '../app.ts';
import { timingOf } from '../server-timing.ts';
import { clientGone, readRecord } from './task-io.ts';

export interface SubmitTask {
  task: TaskName;
  input: unknown;
  threadId?: string | undefined;
}

/** The new task's id, and its final record when it ended within `waitS` seconds (else null). */
export async function submitTask(
  ctx: Context,
  deps: AppDeps,
  req: SubmitTask,
  waitS: number,
): Promise<{ taskId: string; record: (TaskRecord & { owner: string }) | null }> {
  const taskId = newTaskId();
  const ending = waitS > 0 ? deps.completions.expect(taskId) : null;
  try {
    const timing = timingOf(ctx);
    const { queue } = await deps.submitter.submit(
      { ...req, taskId, owner: ctx.state.userId, requestId: ctx.state.requestId },
      timing,
    );
    deps.metrics.tasksSubmitted.inc({ queue });
    if (!ending || !(await timing.time('wait', ending.settled(waitS * 1000, clientGone(ctx))))) {
      return { taskId, record: null };
    }
    const record = ending.record() ?? (await timing.time('read', readRecord(deps, taskId)));
    return { taskId, record: record && isTerminal(record.status) ? record : null };
  } finally {
    ending?.release();
  }
}
