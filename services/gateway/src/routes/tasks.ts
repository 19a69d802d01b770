// GET /tasks/{id}?wait=SECONDS (DESIGN §8): 200 with the record once terminal, 202 while pending
// or running, 404 for an id the gateway does not know.
import type Router from '@koa/router';
import { isTaskId, isTerminal, type TaskRecord } from '@neuroagent/contracts';
import type { Context } from 'koa';
import type { AppDeps } from '../app.ts';
import { HttpError } from '../http-error.ts';

export function publicRecord(record: TaskRecord & { owner?: string }): TaskRecord {
  const { owner: _owner, ...rest } = record;
  return rest;
}

/** An AbortSignal that fires when the client goes away, so its waiter is released at once. */
export function clientGone(ctx: Context): AbortSignal {
  const ac = new AbortController();
  ctx.res.once('close', () => ac.abort());
  return ac.signal;
}

function parseWait(raw: unknown, max: number): number {
  if (raw === undefined) return 0;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (typeof value !== 'string' || !/^\d+(\.\d+)?$/.test(value)) {
    throw new HttpError(400, 'invalid_request', 'wait must be a number of seconds', {
      details: [{ path: '/wait', message: `expected 0 to ${max}` }],
    });
  }
  const n = Number(value);
  if (n > max) {
    throw new HttpError(400, 'invalid_request', `wait must be at most ${max} seconds`, {
      details: [{ path: '/wait', message: `expected 0 to ${max}` }],
    });
  }
  return n;
}

export function registerTaskRoutes(router: Router, deps: AppDeps): void {
  router.get('/tasks/:id', async (ctx) => {
    const id = ctx.params.id ?? '';
    const waitS = parseWait(ctx.query.wait, deps.config.tasks.max_wait_s);
    const notFound = () => new HttpError(404, 'task_not_found', `no task ${id}`);
    if (!isTaskId(id)) throw notFound();
    let record = await deps.store.readRecord(id);
    if (!record) throw notFound();
    if (!isTerminal(record.status) && waitS > 0) {
      await deps.hub.waitForTerminal(id, waitS * 1000, clientGone(ctx));
      record = (await deps.store.readRecord(id)) ?? record;
    }
    ctx.status = isTerminal(record.status) ? 200 : 202;
    ctx.body = publicRecord(record);
  });
}
