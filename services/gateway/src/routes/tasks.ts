// The task API (docs/gateway.md): submit any registered task, read its record (long poll with ?wait=),
// follow its events (SSE), cancel it. Every route answers 404 for a task that is not the caller's,
// exactly as for an unknown id, so ids of other users' tasks cannot be probed.
import type Router from '@koa/router';
import {
  isQueueName,
  isTaskId,
  isTerminal,
  isTerminalEvent,
  QUEUES,
  TASK_STATUSES,
  type TaskAccepted,
  type TaskRecord,
  type TaskStatus,
} from '@neuroagent/contracts';
import { createValidator } from '@neuroagent/platform';
import type { Context } from 'koa';
import type { AppDeps, RecordDeps, TaskRouteDeps } from '../deps.ts';
import { openEventStream } from '../event-stream.ts';
import { HttpError } from '../http-error.ts';
import { TaskSubmit } from '../http-schemas.ts';
import { parseBody } from '../json-body.ts';
import { submitFromRoute, threadIdOf } from '../submission.ts';
import { checkTaskInput, checkTaskName } from '../task-input.ts';
import { clientGone, type OwnedRecord, readAnyRecord, readRecord } from '../task-io.ts';

const submitBody = createValidator(TaskSubmit);

export function publicRecord(record: TaskRecord & { owner?: string }): TaskRecord {
  const { owner: _owner, ...rest } = record;
  return rest;
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

/** The caller's own task, or 404. */
async function ownTask(ctx: Context, deps: RecordDeps): Promise<OwnedRecord> {
  const id = ctx.params.id ?? '';
  const notFound = () => new HttpError(404, 'task_not_found', `no task ${id}`);
  if (!isTaskId(id)) throw notFound();
  // A task published outside the gateway (a NATS CLI replay) has the owner of its message body.
  const record = await readAnyRecord(deps, id);
  if (!record || record.owner !== ctx.state.userId) throw notFound();
  return record;
}

export function accepted(ctx: Context, taskId: string, status: TaskAccepted['status'] = 'pending'): void {
  const body: TaskAccepted = { task_id: taskId, status, status_url: `/tasks/${taskId}` };
  ctx.status = 202;
  ctx.set('location', body.status_url);
  ctx.body = body;
}

export function registerTaskRoutes(router: Router, deps: TaskRouteDeps): void {
  router.post('/tasks', deps.limits.middleware('submit'), async (ctx) => {
    const body = await parseBody(ctx, submitBody, deps.config.http.max_body_kb * 1024);
    checkTaskName(body.task);
    checkTaskInput(body.task, body.input);
    const waitS = parseWait(ctx.query.wait, deps.config.tasks.max_wait_s);
    const { taskId, record, current } = await submitFromRoute(
      ctx,
      deps,
      { task: body.task, input: body.input, threadId: threadIdOf(body.input), request: body },
      waitS,
    );
    if (!record) {
      accepted(ctx, taskId, current?.status);
      return;
    }
    // A task that ended, failed or not, is a 200 with its record: the request itself succeeded.
    ctx.status = 200;
    ctx.set('location', `/tasks/${taskId}`);
    ctx.body = publicRecord(record);
  });

  router.get('/tasks/:id', async (ctx) => {
    const waitS = parseWait(ctx.query.wait, deps.config.tasks.max_wait_s);
    // Registered before the first read, so an end between that read and the wait is not missed.
    const ending =
      waitS > 0 && isTaskId(ctx.params.id ?? '') ? deps.completions.expect(ctx.params.id ?? '') : null;
    try {
      let record = await ownTask(ctx, deps);
      if (ending && !isTerminal(record.status) && (await ending.settled(waitS * 1000, clientGone(ctx)))) {
        record = ending.record() ?? (await readRecord(deps, record.id)) ?? record;
      }
      ctx.status = isTerminal(record.status) ? 200 : 202;
      ctx.body = publicRecord(record);
    } finally {
      ending?.release();
    }
  });

  router.delete('/tasks/:id', async (ctx) => {
    const record = await ownTask(ctx, deps);
    if (isTerminal(record.status)) {
      throw new HttpError(409, 'task_finished', `task ${record.id} already ended as ${record.status}`);
    }
    // A pending task never starts (the flag is checked before it runs); a running one is interrupted.
    await deps.cancel(record.id);
    ctx.status = 202;
    ctx.body = publicRecord(record);
  });

  router.get('/tasks/:id/events', async (ctx) => {
    const record = await ownTask(ctx, deps);
    streamTaskEvents(ctx, deps, record.id);
  });
}

/** Answers with the task's events as Server-Sent Events, from Last-Event-ID on; ends after the terminal one. */
export function streamTaskEvents(ctx: Context, deps: Pick<AppDeps, 'hub'>, taskId: string): void {
  const from = ctx.get('last-event-id') || '0';
  const sse = openEventStream(ctx);
  sse.onEnd(
    deps.hub.subscribe(
      taskId,
      /^\d+-\d+$/.test(from) ? from : '0',
      (event) => {
        sse.send(event.id, event.type, JSON.stringify({ ts: event.ts, data: event.data ?? null }));
        if (isTerminalEvent(event.type)) sse.end();
      },
      sse.end,
    ),
  );
}

const LIST_MAX = 100;

/** GET /tasks: the caller's tasks from the ledger, newest first, with a cursor. */
export function registerTaskListRoute(router: Router, deps: Pick<AppDeps, 'ledger'>): void {
  router.get('/tasks', async (ctx) => {
    const q = ctx.query;
    const one = (v: unknown) => (Array.isArray(v) ? v[0] : v) as string | undefined;
    const status = one(q.status);
    const queue = one(q.queue);
    const rawLimit = one(q.limit);
    const cursor = one(q.cursor);
    const details: { path: string; message: string }[] = [];
    if (status !== undefined && !(TASK_STATUSES as readonly string[]).includes(status)) {
      details.push({ path: '/status', message: `expected one of: ${TASK_STATUSES.join(', ')}` });
    }
    if (queue !== undefined && !isQueueName(queue)) {
      details.push({ path: '/queue', message: `expected one of: ${QUEUES.join(', ')}` });
    }
    const limit = rawLimit === undefined ? 20 : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) {
      details.push({ path: '/limit', message: `expected an integer from 1 to ${LIST_MAX}` });
    }
    if (details.length > 0) {
      throw new HttpError(400, 'invalid_request', 'invalid query parameters', { details });
    }
    // A bad cursor is a ValidationError, which the error handler answers with 400.
    ctx.body = await deps.ledger.list(ctx.state.userId, {
      limit,
      ...(status ? { status: status as TaskStatus } : {}),
      ...(queue ? { queue } : {}),
      ...(cursor ? { cursor } : {}),
    });
  });
}
