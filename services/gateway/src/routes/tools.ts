// Tool routes, one per task definition with a `tool`: the synchronous convenience. Submit, wait
// for the result up to the tool's timeout, and answer 200 with the task's (mapped) output, 422 with
// the task's code when the task failed, 409 when it was cancelled, or 202 with where to poll. A
// failed task is never a 5xx: proxies and clients retry those, and a retry would run it again.
import type Router from '@koa/router';
import { type FieldSizeLimit, type TaskAccepted, TOOL_TASKS, type ToolTask } from '@neuroagent/contracts';
import { createValidator } from '@neuroagent/platform';
import type { Context } from 'koa';
import type { ToolRouteDeps } from '../deps.ts';
import { HttpError } from '../http-error.ts';
import { parseBody } from '../json-body.ts';
import { submitFromRoute, threadIdOf } from '../submission.ts';

/** 413 when the task's large field is over its configured size. */
function checkFieldSize(input: unknown, limit: FieldSizeLimit | undefined, kb: number | undefined): void {
  if (!limit || kb === undefined) return;
  const value = (input as Record<string, unknown> | null)?.[limit.field];
  if (typeof value !== 'string') return;
  const max = kb * 1024;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes <= max) return;
  throw new HttpError(413, limit.code, `${limit.field} is ${bytes} bytes, over the ${max}-byte limit`, {
    details: [{ path: `/${limit.field}`, message: `limit ${max} bytes (${limit.setting.toUpperCase()})` }],
  });
}

function registerToolRoute(router: Router, deps: ToolRouteDeps, def: ToolTask): void {
  const { tool } = def;
  const settings = deps.config.tools[tool.id];
  if (!settings) throw new Error(`no settings for the tool route of ${def.name} (tools.${tool.id})`);
  const envPrefix = `NEUROAGENT_TOOLS__${tool.id.toUpperCase()}__`;
  const sizeLimit = tool.maxFieldSize && {
    ...tool.maxFieldSize,
    setting: `${envPrefix}${tool.maxFieldSize.setting}`,
  };
  const validator = createValidator(def.input);
  const respond = tool.response?.map ?? ((output: unknown) => output);

  router.post(tool.path, deps.limits.middleware(tool.id), async (ctx: Context) => {
    const input = await parseBody(ctx, validator, deps.config.http.max_body_kb * 1024);
    checkFieldSize(input, sizeLimit, tool.maxFieldSize && settings[tool.maxFieldSize.setting]);
    const { taskId, record, current } = await submitFromRoute(
      ctx,
      deps,
      { task: def.name, input, threadId: threadIdOf(input), request: input },
      settings.timeout_s ?? tool.defaultWaitS,
    );
    ctx.set('x-task-id', taskId);
    if (!record) {
      const accepted: TaskAccepted = {
        task_id: taskId,
        status: current?.status ?? 'pending',
        status_url: `/tasks/${taskId}`,
      };
      ctx.status = 202;
      ctx.set('location', accepted.status_url);
      ctx.body = accepted;
      return;
    }
    if (record.status === 'succeeded') {
      ctx.status = 200;
      ctx.body = respond(record.result);
      return;
    }
    const error = record.error ?? { code: 'internal', message: 'the task failed' };
    throw new HttpError(record.status === 'cancelled' ? 409 : 422, error.code, error.message, {
      ...(error.details ? { details: error.details } : {}),
    });
  });
}

export function registerToolRoutes(router: Router, deps: ToolRouteDeps): void {
  for (const def of TOOL_TASKS) registerToolRoute(router, deps, def);
}
