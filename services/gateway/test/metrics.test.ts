// Gateway metrics on a tiny Koa app: route templates (never raw URLs) as labels, statuses,
// counters, the waiter gauge's callback, and the dedicated registry.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Router from '@koa/router';
import Koa from 'koa';
import { createMetrics, httpMetricsMiddleware, registerMetricsRoute } from '../src/metrics.ts';

describe('gateway metrics', () => {
  let waiters = 3;
  const metrics = createMetrics({ longPollWaiters: () => waiters });
  let url: string;
  let server: ReturnType<typeof createServer>;

  before(async () => {
    const app = new Koa();
    app.silent = true;
    app.use(httpMetricsMiddleware(metrics));
    const router = new Router();
    router.get('/things/:id', (ctx) => {
      ctx.body = { id: ctx.params.id };
    });
    router.get('/boom', () => {
      throw new Error('boom');
    });
    registerMetricsRoute(router, metrics);
    app.use(router.routes());
    server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function scrape(): Promise<string> {
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  }

  it('labels requests by route template and status', async () => {
    assert.equal((await fetch(`${url}/things/41`)).status, 200);
    assert.equal((await fetch(`${url}/things/42`)).status, 200);
    assert.equal((await fetch(`${url}/nowhere`)).status, 404);
    assert.equal((await fetch(`${url}/boom`)).status, 500);
    const text = await scrape();
    assert.match(text, /# TYPE http_request_duration_seconds histogram/);
    assert.match(
      text,
      /http_request_duration_seconds_count\{method="GET",route="\/things\/:id",status="200"\} 2\n/,
    );
    assert.match(
      text,
      /http_request_duration_seconds_bucket\{le="\+Inf",method="GET",route="\/things\/:id",status="200"\} 2\n/,
    );
    assert.match(
      text,
      /http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} 1\n/,
    );
    assert.match(text, /http_request_duration_seconds_count\{method="GET",route="\/boom",status="500"\} 1\n/);
    assert.doesNotMatch(text, /\/things\/4[12]/);
    assert.doesNotMatch(text, /\/nowhere/);
  });

  it('counts tasks and rate-limit rejections', async () => {
    metrics.tasksSubmitted.inc({ queue: 'python_q' });
    metrics.tasksSubmitted.inc({ queue: 'python_q' });
    metrics.tasksCompleted.inc({ queue: 'python_q' });
    metrics.tasksFailed.inc({ queue: 'circuit_q' });
    metrics.rateLimitRejections.inc({ route: '/tools/run-python' });
    const text = await scrape();
    assert.match(text, /tasks_submitted_total\{queue="python_q"\} 2\n/);
    assert.match(text, /tasks_completed_total\{queue="python_q"\} 1\n/);
    assert.match(text, /tasks_failed_total\{queue="circuit_q"\} 1\n/);
    assert.match(text, /rate_limit_rejections_total\{route="\/tools\/run-python"\} 1\n/);
  });

  it('reads the long-poll waiter gauge from the callback at each scrape', async () => {
    assert.match(await scrape(), /\nlong_poll_waiters 3\n/);
    waiters = 7;
    assert.match(await scrape(), /\nlong_poll_waiters 7\n/);
  });

  it('includes process metrics, on a registry of its own', async () => {
    assert.match(await scrape(), /process_cpu_user_seconds_total/);
    // A second set must not collide with the first (it would on prom-client's global registry).
    const other = createMetrics({ defaultMetrics: false });
    assert.notEqual(other.registry, metrics.registry);
    assert.doesNotMatch(await other.registry.metrics(), /process_cpu_user_seconds_total/);
  });
});
