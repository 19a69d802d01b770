// GET /rate-limit: the caller's remaining budget on each limited route (the original's
// GET /rate_limit, without its KEYS scan). Reads counters only; never consumes a point.
import type Router from '@koa/router';
import { type RateLimits, rateLimitUser } from './limiter.ts';

export interface RateLimitRouteDeps {
  limits: Pick<RateLimits, 'budgets'>;
}

export function registerRateLimitRoute(router: Router, deps: RateLimitRouteDeps): void {
  router.get('/rate-limit', async (ctx) => {
    const userId = rateLimitUser(ctx);
    ctx.set('cache-control', 'no-store');
    ctx.body = await deps.limits.budgets(userId);
  });
}
