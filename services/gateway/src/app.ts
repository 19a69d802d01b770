// createApp builds the Koa application without listening, so tests drive app.callback() and
// main.ts owns the server. Dependencies come in as interfaces; nothing here connects anywhere.
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import type { Logger, Storage, TaskStore } from '@neuroagent/platform';
import Koa from 'koa';
import type { GatewayConfig } from './config.ts';
import { errorHandler } from './http-error.ts';
import type { ProgressHub } from './progress-hub.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerStorageRoutes } from './routes/storage.ts';
import { registerTaskRoutes } from './routes/tasks.ts';
import { registerToolRoutes } from './routes/tools.ts';
import type { TaskSubmitter } from './task-submitter.ts';

export interface Readiness {
  nats(): Promise<unknown>;
  redis(): Promise<unknown>;
  stream(): Promise<unknown>;
}

export interface AppDeps {
  config: Readonly<GatewayConfig>;
  store: TaskStore;
  hub: ProgressHub;
  submitter: TaskSubmitter;
  readiness: Readiness;
  /** null when artifact storage is disabled. */
  storage: Storage | null;
  log: Logger;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
// Before auth exists (and when it is disabled) every task belongs to this user (DESIGN §9).
export const ANONYMOUS_USER = 'anonymous';

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = false;
  app.silent = true; // errors are logged once, by errorHandler

  app.use(async function requestContext(ctx, next) {
    const incoming = ctx.get('x-request-id');
    ctx.state.requestId = REQUEST_ID_RE.test(incoming) ? incoming : randomUUID();
    ctx.state.userId = ANONYMOUS_USER;
    ctx.set('x-request-id', ctx.state.requestId);
    const started = performance.now();
    await next();
    deps.log.debug(
      {
        requestId: ctx.state.requestId,
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        ms: Math.round(performance.now() - started),
      },
      'request',
    );
  });
  app.use(errorHandler(deps.log));

  const router = new Router();
  registerHealthRoutes(router, deps);
  registerToolRoutes(router, deps);
  registerTaskRoutes(router, deps);
  registerStorageRoutes(router, deps);
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
