// createApp builds the Koa application without listening, so tests drive app.callback() and
// main.ts owns the server. Dependencies come in as interfaces; nothing here connects anywhere.
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import { authenticate } from './auth/middleware.ts';
import { ANONYMOUS_USER_ID } from './auth/verifier.ts';
import type { AppDeps } from './deps.ts';
import { errorHandler } from './http-error.ts';
import { httpMetricsMiddleware, registerMetricsRoute } from './metrics.ts';
import { registerOpenApiRoutes } from './openapi/routes.ts';
import { gatewayOpenApiDocument } from './openapi/routes-catalog.ts';
import { registerRateLimitRoute } from './rate-limit/routes.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerStorageRoutes } from './routes/storage.ts';
import { registerTaskListRoute, registerTaskRoutes } from './routes/tasks.ts';
import { registerToolRoutes } from './routes/tools.ts';

export type { AppDeps, Readiness } from './deps.ts';

/** Routes anyone may call: probes, the API description and metrics. */
export const PUBLIC_PATHS = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs'];

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
// With auth disabled every task belongs to this user (README.md, Configuration).
export const ANONYMOUS_USER = ANONYMOUS_USER_ID;

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = false;
  app.silent = true; // errors are logged once, by errorHandler
  const retryAfter = String(deps.config.http.retry_after_s);

  app.use(async function requestContext(ctx, next) {
    const incoming = ctx.get('x-request-id');
    ctx.state.requestId = REQUEST_ID_RE.test(incoming) ? incoming : randomUUID();
    ctx.state.userId = ANONYMOUS_USER;
    ctx.set('x-request-id', ctx.state.requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      if (ctx.state.timing) ctx.set('server-timing', ctx.state.timing.header());
      // A client told to come back must be told when: every 503 says (RFC 9110 §10.2.3).
      if (ctx.status === 503 && !ctx.response.get('retry-after')) ctx.set('retry-after', retryAfter);
    }
    // The route template, never the URL: a path may hold ids and a query a signature or token.
    deps.log.info(
      {
        requestId: ctx.state.requestId,
        method: ctx.method,
        route: (ctx as { _matchedRoute?: string })._matchedRoute ?? null,
        status: ctx.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
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
