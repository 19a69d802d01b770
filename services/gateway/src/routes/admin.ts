// The admin API under /admin (docs/admin-api.md) and GET /me. Every /admin route answers 403 to a
// caller without the admin role; every action that changes something is written to the audit
// log before it answers, with its outcome, so a failed action is on record too.
import type Router from '@koa/router';
import {
  isQueueName,
  isTaskId,
  isTaskStatus,
  isTerminal,
  QUEUES,
  type QueueName,
  TASKS,
} from '@neuroagent/contracts';
import { createValidator, errorMessage, ReplayError } from '@neuroagent/platform';
import type { Context, Next } from 'koa';
import { PauseBody, SeqSelection } from '../admin/admin-schemas.ts';
import type { AdminOps } from '../admin/operations.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../http-error.ts';
import { parseBody } from '../json-body.ts';
import { type AuditAction, type AuditLog, isAuditAction } from '../ledger/audit-log.ts';
import type { Ledger } from '../ledger/ledger.ts';
import { streamTaskEvents } from './tasks.ts';

export type AdminRouteDeps = Pick<AppDeps, 'config' | 'hub' | 'cancel' | 'log' | 'store'> & {
  admin: AdminOps;
  audit: AuditLog;
  ledger: Pick<Ledger, 'search'>;
};

const seqSelection = createValidator(SeqSelection);
const pauseBody = createValidator(PauseBody);
const LIST_MAX = 100;

function requireAdmin(ctx: Context, next: Next): Promise<void> {
  if (!ctx.state.admin) throw new HttpError(403, 'forbidden', 'this route needs the admin role');
  return next();
}

const one = (v: unknown) => (Array.isArray(v) ? v[0] : v) as string | undefined;

function queryLimit(raw: string | undefined, details: { path: string; message: string }[]): number {
  const limit = raw === undefined ? 20 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) {
    details.push({ path: '/limit', message: `expected an integer from 1 to ${LIST_MAX}` });
  }
  return limit;
}

function queryTime(name: string, raw: string | undefined, details: { path: string; message: string }[]) {
  if (raw === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(t)) {
    details.push({ path: `/${name}`, message: 'expected an ISO-8601 time' });
    return undefined;
  }
  return new Date(t);
}

function badQuery(details: { path: string; message: string }[]): void {
  if (details.length > 0)
    throw new HttpError(400, 'invalid_request', 'invalid query parameters', { details });
}

function queueParam(ctx: Context): QueueName {
  const queue = ctx.params.queue ?? '';
  if (!isQueueName(queue)) {
    throw new HttpError(404, 'queue_not_found', `no queue ${queue}`, {
      details: [{ path: '/queue', message: `expected one of: ${QUEUES.join(', ')}` }],
    });
  }
  return queue;
}

function taskIdParam(ctx: Context): string {
  const id = ctx.params.id ?? '';
  if (!isTaskId(id)) throw new HttpError(404, 'task_not_found', `no task ${id}`);
  return id;
}

/** An optional JSON body: none at all means `{}`. */
async function optionalBody<T>(ctx: Context, parse: () => Promise<T>, empty: T): Promise<T> {
  const length = ctx.get('content-length');
  if ((length === '' || length === '0') && !ctx.get('transfer-encoding')) return empty;
  return parse();
}

export function registerMeRoute(router: Router): void {
  router.get('/me', (ctx) => {
    ctx.body = { user_id: ctx.state.userId, admin: ctx.state.admin };
  });
}

export function registerAdminRoutes(router: Router, deps: AdminRouteDeps): void {
  const maxBody = deps.config.http.max_body_kb * 1024;

  /**
   * Records the action, then runs it, then records how it ended. The first write comes before the
   * action, so nothing is done that the log does not show; its outcome stays `ok: null` only if
   * the gateway died, or the ledger failed, in between.
   */
  async function audited<T>(
    ctx: Context,
    action: AuditAction,
    target: string,
    detail: Record<string, unknown>,
    run: () => Promise<T>,
  ): Promise<T> {
    // No row, no action: an action the log cannot show is never run.
    const entry = await deps.audit
      .record({ actor: ctx.state.userId, action, target, detail: { ...detail, ok: null } })
      .catch((err: unknown) => {
        throw new HttpError(
          503,
          'audit_unavailable',
          'the audit log (the ledger database) cannot be written; the action was not run',
          { cause: err },
        );
      });
    const settle = (outcome: { ok: boolean; code?: string }) =>
      deps.audit
        .settle(entry.id, outcome)
        .catch((err: unknown) =>
          deps.log.error({ err, auditId: entry.id }, 'audit: could not record the outcome'),
        );
    try {
      const out = await run();
      await settle({ ok: true });
      return out;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      await settle({ ok: false, code: typeof code === 'string' ? code : 'internal' });
      throw err;
    }
  }

  router.use('/admin', requireAdmin);

  router.get('/admin/queues', async (ctx) => {
    ctx.body = { queues: await deps.admin.queues() };
  });

  for (const [verb, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    router.post(`/admin/queues/:queue/${verb}`, async (ctx) => {
      const queue = queueParam(ctx);
      const body = await optionalBody(ctx, () => parseBody(ctx, pauseBody, maxBody), {});
      const reason = body.reason ?? '';
      ctx.body = await audited(ctx, paused ? 'queue.pause' : 'queue.resume', queue, { reason }, () =>
        deps.admin.setPaused(queue, { paused, by: ctx.state.userId, at: new Date().toISOString(), reason }),
      );
    });
  }

  router.get('/admin/tasks', async (ctx) => {
    const q = ctx.query;
    const details: { path: string; message: string }[] = [];
    const status = one(q.status);
    const queue = one(q.queue);
    const task = one(q.task);
    if (status !== undefined && !isTaskStatus(status))
      details.push({ path: '/status', message: 'unknown status' });
    if (queue !== undefined && !isQueueName(queue)) {
      details.push({ path: '/queue', message: `expected one of: ${QUEUES.join(', ')}` });
    }
    if (task !== undefined && !(task in TASKS)) {
      details.push({ path: '/task', message: `expected one of: ${Object.keys(TASKS).join(', ')}` });
    }
    const limit = queryLimit(one(q.limit), details);
    const since = queryTime('since', one(q.since), details);
    const until = queryTime('until', one(q.until), details);
    badQuery(details);
    const owner = one(q.owner);
    const errorCode = one(q.error_code);
    const cursor = one(q.cursor);
    ctx.body = await deps.ledger.search({
      limit,
      ...(status && isTaskStatus(status) ? { status } : {}),
      ...(queue ? { queue } : {}),
      ...(task ? { task } : {}),
      ...(owner ? { owner } : {}),
      ...(errorCode ? { errorCode } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(cursor ? { cursor } : {}),
    });
  });

  router.get('/admin/tasks/:id', async (ctx) => {
    const id = taskIdParam(ctx);
    const detail = await deps.admin.taskDetail(id);
    if (!detail) throw new HttpError(404, 'task_not_found', `no task ${id}`);
    if (detail.record) {
      const { owner: _owner, ...record } = detail.record;
      ctx.body = { ...detail, record };
    } else ctx.body = detail;
  });

  router.get('/admin/tasks/:id/events', async (ctx) => {
    const id = taskIdParam(ctx);
    if (!(await deps.store.readRecord(id))) throw new HttpError(404, 'task_not_found', `no task ${id}`);
    streamTaskEvents(ctx, deps, id);
  });

  router.post('/admin/tasks/:id/replay', async (ctx) => {
    const id = taskIdParam(ctx);
    const out = await audited(ctx, 'task.replay', id, {}, async () => {
      try {
        return await deps.admin.replay(id);
      } catch (err) {
        if (err instanceof ReplayError && err.code === 'task_not_found') {
          throw new HttpError(404, 'task_not_found', errorMessage(err), { cause: err });
        }
        if (err instanceof ReplayError && err.code === 'bad_arguments') {
          throw new HttpError(409, 'not_replayable', errorMessage(err), { cause: err });
        }
        throw err;
      }
    });
    ctx.status = 202;
    ctx.set('location', `/tasks/${out.task_id}`);
    ctx.body = out;
  });

  router.post('/admin/tasks/:id/cancel', async (ctx) => {
    const id = taskIdParam(ctx);
    const record = await deps.store.readRecord(id);
    if (!record) throw new HttpError(404, 'task_not_found', `no task ${id}`);
    if (isTerminal(record.status)) {
      throw new HttpError(409, 'task_finished', `task ${id} already ended as ${record.status}`);
    }
    await audited(ctx, 'task.cancel', id, { owner: record.owner }, () => deps.cancel(id));
    const { owner: _owner, ...rest } = record;
    ctx.status = 202;
    ctx.body = rest;
  });

  router.get('/admin/dead-letters', async (ctx) => {
    const details: { path: string; message: string }[] = [];
    const limit = queryLimit(one(ctx.query.limit), details);
    const cursor = one(ctx.query.cursor);
    if (cursor !== undefined && !/^\d{1,15}$/.test(cursor)) {
      details.push({ path: '/cursor', message: 'not a cursor from this API' });
    }
    badQuery(details);
    ctx.body = await deps.admin.deadLetters({ afterSeq: cursor ? Number(cursor) : 0, limit });
  });

  router.post('/admin/dead-letters/redrive', async (ctx) => {
    const selection = await parseBody(ctx, seqSelection, maxBody);
    ctx.body = await audited(ctx, 'dlq.redrive', 'dlq', { selection }, () => deps.admin.redrive(selection));
  });

  router.post('/admin/dead-letters/purge', async (ctx) => {
    const selection = await parseBody(ctx, seqSelection, maxBody);
    ctx.body = await audited(ctx, 'dlq.purge', 'dlq', { selection }, () => deps.admin.purge(selection));
  });

  router.get('/admin/audit', async (ctx) => {
    const details: { path: string; message: string }[] = [];
    const limit = queryLimit(one(ctx.query.limit), details);
    const action = one(ctx.query.action);
    if (action !== undefined && !isAuditAction(action))
      details.push({ path: '/action', message: 'unknown action' });
    badQuery(details);
    const actor = one(ctx.query.actor);
    const cursor = one(ctx.query.cursor);
    ctx.body = await deps.audit.list({
      limit,
      ...(actor ? { actor } : {}),
      ...(action && isAuditAction(action) ? { action } : {}),
      ...(cursor ? { cursor } : {}),
    });
  });
}
