// createApp builds the Koa application without listening, so tests drive app.callback() and
// main.ts owns the server. Dependencies come in as interfaces; nothing here connects anywhere.
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import {
  ATTR,
  extractTraceContext,
  markErrorCode,
  SpanKind,
  tracingEnabled,
  withSpan,
} from '@neuroagent/platform';
import Koa, { type Context, type Next } from 'koa';
import { authenticate } from './auth/middleware.ts';
import { ANONYMOUS_USER_ID } from './auth/verifier.ts';
import type { AppDeps } from './deps.ts';
import { errorHandler } from './http-error.ts';
import { httpMetricsMiddleware, registerMetricsRoute } from './metrics.ts';
import { registerOpenApiRoutes } from './openapi/routes.ts';
import { gatewayOpenApiDocument } from './openapi/routes-catalog.ts';
import { registerRateLimitRoute } from './rate-limit/routes.ts';
import { registerAdminRoutes, registerMeRoute } from './routes/admin.ts';
import { registerDashboardRoutes } from './routes/dashboard.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerStorageRoutes } from './routes/storage.ts';
import { registerTaskListRoute, registerTaskRoutes } from './routes/tasks.ts';
import { registerThreadRoutes } from './routes/threads.ts';
import { registerToolRoutes } from './routes/tools.ts';
import { startTiming } from './server-timing.ts';

export type { AppDeps, Readiness } from './deps.ts';

/** Routes anyone may call: probes, the API description, metrics and the dashboard page (its API calls carry a token). */
export const PUBLIC_PATHS = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/ui', '/ui/*'];

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
// With auth disabled every task belongs to this user (README.md, Configuration).
export const ANONYMOUS_USER = ANONYMOUS_USER_ID;

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = false;
  app.silent = true; // errors are logged once, by errorHandler
  const retryAfter = String(deps.config.http.retry_after_s);

  // Outermost, so each log line of a request (its `request` line too) carries the trace id. Only
  // with tracing on: without it a request pays nothing for tracing at all.
  if (tracingEnabled()) app.use(traceRequests());
  app.use(async function requestContext(ctx, next) {
    const incoming = ctx.get('x-request-id');
    ctx.state.requestId = REQUEST_ID_RE.test(incoming) ? incoming : randomUUID();
    ctx.state.userId = ANONYMOUS_USER;
    ctx.state.admin = false;
    ctx.set('x-request-id', ctx.state.requestId);
    startTiming(ctx, deps.config.http.server_timing);
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
        ...ctx.state.submitted,
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
  registerThreadRoutes(router, deps);
  registerMeRoute(router);
  registerAdminRoutes(router, deps);
  registerStorageRoutes(router, deps);
  registerRateLimitRoute(router, { limits: deps.limits });
  registerMetricsRoute(router, deps.metrics);
  registerDashboardRoutes(router, deps);
  const document = gatewayOpenApiDocument();
  registerOpenApiRoutes(router, () => document);
  return router;
}

// ------------------------------------------------------------------ tracing

// Any other method names the span `HTTP` and the attribute `_OTHER`: a client chooses the method,
// and span names must stay a small, fixed set.
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
const SERVER_SPAN = { kind: SpanKind.SERVER, attributes: { [ATTR.urlScheme]: 'http' } };
const ERROR_CODE_RE = /^[a-z0-9_]{1,64}$/;

/**
 * One SERVER span per request, named by method and route template (`POST /tasks`, `GET
 * /tasks/:id`): never the URL, whose path holds ids and whose query may hold a signature. It
 * continues a caller's W3C `traceparent` (parsed with the same caps as on NATS). A 5xx is an error
 * whose type is the ErrorBody code.
 */
function traceRequests() {
  return async function traceRequest(ctx: Context, next: Next): Promise<void> {
    const known = HTTP_METHODS.has(ctx.method);
    const parent = extractTraceContext({ get: (name) => ctx.get(name) });
    await withSpan(known ? ctx.method : 'HTTP', { ...SERVER_SPAN, parent }, async (span) => {
      span?.setAttribute(ATTR.httpMethod, known ? ctx.method : '_OTHER');
      try {
        await next();
      } finally {
        const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
        if (typeof route === 'string') {
          span?.setAttribute(ATTR.httpRoute, route);
          span?.updateName(`${known ? ctx.method : 'HTTP'} ${route}`);
        }
        span?.setAttribute(ATTR.httpStatus, ctx.status);
        if (ctx.status >= 500) {
          const code = (ctx.body as { code?: unknown } | null)?.code;
          markErrorCode(
            span,
            typeof code === 'string' && ERROR_CODE_RE.test(code) ? code : String(ctx.status),
          );
        }
      }
    });
  };
}
