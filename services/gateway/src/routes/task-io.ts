// What every task route needs around a request: the task's record from Redis (Redis down is a
// 503, not a 500), and a signal that the client went away (so its waiter is released at once).
import type { TaskRecord } from '@neuroagent/contracts';
import type { Context } from 'koa';
import type { AppDeps } from '../app.ts';
import { HttpError } from '../http-error.ts';

/** An AbortSignal that fires when the client goes away, so its waiter is released at once. */
export function clientGone(ctx: Context): AbortSignal {
  const ac = new AbortController();
  ctx.res.once('close', () => ac.abort());
  return ac.signal;
}

/** The task's record from Redis; Redis down is a 503 the client may retry, not a 500. */
export async function readRecord(
  deps: AppDeps,
  taskId: string,
): Promise<(TaskRecord & { owner: string }) | null> {
  try {
    return await deps.store.readRecord(taskId);
  } catch (err) {
    throw new HttpError(503, 'result_backend_unavailable', 'Redis is not reachable; try again', {
      cause: err,
    });
  }
}
