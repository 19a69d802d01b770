// Prometheus metrics of the gateway, on a dedicated Registry (never prom-client's global one, so
// tests and several apps in one process do not collide). Must not import app.ts or route modules:
// the app passes in what the metrics read (the long-poll waiter count).
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsOptions {
  /** Read at every scrape: requests currently parked in a long poll (GET /tasks/:id?wait=, tools). */
  longPollWaiters?: () => number;
  /** Process metrics (CPU, memory, event loop lag, GC); on unless false. */
  defaultMetrics?: boolean;
}

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly tasksSubmitted: Counter<'queue'>;
  readonly tasksCompleted: Counter<'queue'>;
  readonly tasksFailed: Counter<'queue'>;
  readonly rateLimitRejections: Counter<'route'>;
  readonly agentTurns: Counter<'status'>;
  readonly agentToolCalls: Counter<'tool' | 'status'>;
  /** Per turn: its wall time less the model calls and the tool tasks, per tool call made. */
  readonly agentLoopOverhead: Histogram;
}

// Tool routes and ?wait= hold a request for up to minutes, so the buckets go past prom-client's 10 s.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createMetrics(opts: MetricsOptions = {}): GatewayMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const waiters = opts.longPollWaiters;
  new Gauge({
    name: 'long_poll_waiters',
    help: 'Requests currently waiting for a task to end',
    registers: [registry],
    collect() {
      if (waiters) this.set(waiters());
    },
  });

  return {
    registry,
    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration until the response is handed to Node, by route template',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    tasksSubmitted: new Counter({
      name: 'tasks_submitted_total',
      help: 'Tasks published to JetStream',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    tasksCompleted: new Counter({
      name: 'tasks_completed_total',
      help: 'Tasks seen ending as succeeded',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    tasksFailed: new Counter({
      name: 'tasks_failed_total',
      help: 'Tasks seen ending as failed',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    rateLimitRejections: new Counter({
      name: 'rate_limit_rejections_total',
      help: 'Requests answered 429 by the rate limiter',
      labelNames: ['route'] as const,
      registers: [registry],
    }),
    agentTurns: new Counter({
      name: 'agent_turns_total',
      help: 'Agent turns that ended, by how (completed, failed, cancelled)',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    agentToolCalls: new Counter({
      name: 'agent_tool_calls_total',
      help: 'Tool calls of agent turns, by tool and result (succeeded, failed, cancelled, rejected)',
      labelNames: ['tool', 'status'] as const,
      registers: [registry],
    }),
    agentLoopOverhead: new Histogram({
      name: 'agent_loop_overhead_seconds',
      help: "The gateway's own time per tool call of a turn: the turn's wall time less its model calls and tool tasks",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

// ------------------------------------------------------------------ HTTP middleware

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The router's template for the request (set by @koa/router), or `unmatched`. */
function routeLabel(ctx: Context): string {
  // MUST stay a template: a raw URL here makes one time series per task id.
  const route = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
  if (route === undefined) return 'unmatched';
  return typeof route === 'string' ? route : String(route);
}

/**
 * Measures every request. Mount it before the error handler, so the status it records is the
 * one the client gets; an error that still escapes is counted with its status (or 500).
 * For a streamed body (SSE) the time is until the stream starts, not until it ends.
 */
export function httpMetricsMiddleware(metrics: GatewayMetrics) {
  return async function measureHttp(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    let status: number | undefined;
    try {
      await next();
    } catch (err) {
      const s = (err as { status?: unknown }).status;
      status = typeof s === 'number' && s >= 400 && s < 600 ? s : 500;
      throw err;
    } finally {
      metrics.httpRequestDuration.observe(
        {
          method: KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER',
          route: routeLabel(ctx),
          status: String(status ?? ctx.status),
        },
        (performance.now() - started) / 1000,
      );
    }
  };
}

export function registerMetricsRoute(router: Router, metrics: GatewayMetrics): void {
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
}
