// createApp builds the Koa application without listening, so tests drive app.callback() and
// main.ts owns the server. Dependencies come in as interfaces; nothing here connects anywhere.
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import type { Logger, Storage, TaskStore } from '@neuroagent/platform';
import Koa from 'koa';
import { authenticate } from './auth/middleware.ts';
import type { Verifier } from './auth/verifier.ts';
import { ANONYMOUS_USER_ID } from './auth/verifier.ts';
import type { CompletionWatch } from './completion-watch.ts';
import type { GatewayConfig } from './config.ts';
import { errorHandler } from './http-error.ts';
import type { Ledger } from './ledger/ledger.ts';
import { type GatewayMetrics, httpMetricsMiddleware, registerMetricsRoute } from './metrics.ts';
import { registerOpenApiRoutes } from './openapi/routes.ts';
import { gatewayOpenApiDocument } from './openapi/routes-catalog.ts';
import type { ProgressHub } from './progress-hub.ts';
import type { RateLimits } from './rate-limit/limiter.ts';
import { registerRateLimitRoute } from './rate-limit/routes.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerStorageRoutes } from './routes/storage.ts';
import { registerTaskListRoute, registerTaskRoutes } from './routes/tasks.ts';
import { registerToolRoutes } from './routes/tools.ts';
import type { ServerTiming } from './server-timing.ts';
import type { TaskSubmitter } from './task-submitter.ts';

export interface Readiness {
  nats(): Promise<unknown>;
  redis(): Promise<unknown>;
  stream(): Promise<unknown>;
}

export interface AppDeps {
  config: Readonly<GatewayConfig>;
  store: TaskStore;
  /** SSE: every event of a task. */
  hub: ProgressHub;
  /** Long polls: wakes when a task ends. */
  completions: CompletionWatch;
  submitter: TaskSubmitter;
  readiness: Readiness;
  /** null when artifact storage is disabled. */
  storage: Storage | null;
  /** Flags the task as cancelled and interrupts it where it runs. */
  cancel(taskId: string): Promise<void>;
  verifier: Verifier;
  limits: RateLimits;
  metrics: GatewayMetrics;
  ledger: Pick<Ledger, 'list' | 'get'>;
  log: Logger;
}

/** Routes anyone may call: probes, the API description and metrics. */
export const PUBLIC_PATHS = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs'];

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
// With auth disabled every task belongs to this user (README.md, Configuration).
export const ANONYMOUS_USER = ANONYMOUS_USER_ID;

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
    try {
      await next();
    } finally {
      const timing = ctx.state.timing as ServerTiming | undefined;
      if (timing) ctx.set('server-timing', timing.header());
    }
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
  // Metrics wrap the error handler, so they record the status the client actually gets.
  app.use(httpMetricsMiddleware(deps.metrics));
  app.use(errorHandler(deps.log));
  app.use(authenticate(deps.verifier, { publicPaths: PUBLIC_PATHS }));

  const router = createRouter(deps);
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}

/** Every route of the gateway; exported so a test can check each one is in the OpenAPI document. */
export function createRouter(deps: AppDeps): Router {
  const router = new Router();
  registerHealthRoutes(router, deps);
  registerToolRoutes(router, deps);
  registerTaskListRoute(router, deps);
  registerTaskRoutes(router, deps);
  registerStorageRoutes(router, deps);
  registerRateLimitRoute(router, { limits: deps.limits });
  registerMetricsRoute(router, deps.metrics);
  const document = gatewayOpenApiDocument();
  registerOpenApiRoutes(router, () => document);
  return router;
}
