// GET /healthz: the process is up. GET /readyz: NATS and Redis answer and the stream exists.
import type Router from '@koa/router';
import type { ErrorBody } from '@neuroagent/contracts';
import type { HealthDeps } from '../deps.ts';

const CHECK_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`${what} did not answer in ${CHECK_TIMEOUT_MS} ms`)),
        CHECK_TIMEOUT_MS,
      ).unref(),
    ),
  ]);
}

export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const checks = await Promise.allSettled([
      withTimeout(deps.readiness.nats(), 'NATS'),
      withTimeout(deps.readiness.redis(), 'Redis'),
      withTimeout(deps.readiness.stream(), 'JetStream stream'),
    ]);
    const names = ['nats', 'redis', 'stream'] as const;
    const failed = checks.flatMap((c, i) =>
      c.status === 'rejected'
        ? [{ path: `/${names[i]}`, message: String((c.reason as Error)?.message ?? c.reason) }]
        : [],
    );
    if (failed.length === 0) {
      ctx.body = { status: 'ready', checks: { nats: 'ok', redis: 'ok', stream: 'ok' } };
      return;
    }
    const body: ErrorBody = { code: 'not_ready', message: 'a dependency is not ready', details: failed };
    ctx.status = 503;
    ctx.body = body;
  });
}
