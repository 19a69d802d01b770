// Per-user, per-route rate limits (docs/gateway.md) on rate-limiter-flexible: a fixed window per
// `<key_prefix>:<route>:<user>` counted by one Lua script in Redis, so concurrent requests cannot
// overshoot (the original did GET then INCR). Never scans keys. The routes are `submit` and each
// tool route's id (settings.ts). Imports no routes and no app.ts.
import type { Logger, Redis } from '@neuroagent/platform';
import type { Context, Middleware, Next } from 'koa';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  RLWrapperTimeouts,
} from 'rate-limiter-flexible';
import { HttpError } from '../http-error.ts';
import { type StageTimer, timingOf } from '../server-timing.ts';
import { budgetOf, RATE_LIMITED_ROUTES, type RateLimitedRoute, type RateLimitSettings } from './settings.ts';

export { RATE_LIMITED_ROUTES, type RateLimitedRoute };

export interface Budget {
  limit: number;
  remaining: number;
  /** Seconds until the current window ends; 0 when no window is open (nothing used yet). */
  reset_in_s: number;
}

/** What one counted request leaves of its budget; all -1 when rate limiting is off. */
export interface Consumed {
  limit: number;
  remaining: number;
  resetS: number;
}

/** 429: the user's budget on a route is used up until `resetS` seconds from now. */
export class RateLimitedError extends HttpError {
  readonly limit: number;
  readonly resetS: number;

  constructor(limit: number, resetS: number, message: string) {
    super(429, 'rate_limited', message);
    this.name = 'RateLimitedError';
    this.limit = limit;
    this.resetS = resetS;
  }
}

export interface RateLimits {
  middleware(route: RateLimitedRoute): Middleware;
  consume(route: RateLimitedRoute, userId: string, timing?: StageTimer): Promise<Consumed>;
  budgets(userId: string): Promise<Record<RateLimitedRoute, Budget>>;
  /** Requests answered 429 since boot (for /metrics). */
  rejections(): number;
}

export const RATE_LIMIT_HEADERS = [
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
] as const;
// The user of a request that reached a limited route without one: never happens behind authenticate(),
// which always sets ctx.state.userId; counted under one key rather than not at all.
const FALLBACK_USER = 'anonymous';
const INSURANCE_LOG_EVERY_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Redis-down policy
//
// Default 'insurance': the tool routes are the product, and a Redis outage should degrade the
// limit rather than the service. Each gateway process then counts in memory with the same points,
// so with N replicas a user can get up to N× the limit until Redis is back (and the in-memory
// counts are dropped then; Redis resumes its own window). That is the same order of strictness as
// a best-effort limiter and strictly better than the original (500 for everyone). Paths that need
// Redis for their own work (long-poll, results) fail on their own; the rate limiter should not add
// a second, earlier failure to the paths that only need NATS.
// 'fail_closed' is for deployments where the limit guards spend: 503 rate_limiter_unavailable.
//
// rate-limiter-flexible has no timeout of its own, and the shared ioredis client queues commands
// while it reconnects. Two guards keep a bad Redis from stalling requests:
//   - rejectIfRedisNotReady: while ioredis is not 'ready' (closed socket, reconnecting, and also
//     the first moments after boot before the connection is up), fail at once;
//   - RLWrapperTimeouts: a Redis that accepts the connection but does not answer (hung, overloaded)
//     fails after redis_timeout_ms. The abandoned Lua call may still run later and count that
//     request in Redis as well as in memory; over-counting by one is the safe side.
// ---------------------------------------------------------------------------------------------

/** The in-memory fallback; logs (throttled) when it is actually used, so an outage is visible. */
class InsuranceLimiter extends RateLimiterMemory {
  #log: Logger;
  #lastLog = 0;

  constructor(opts: ConstructorParameters<typeof RateLimiterMemory>[0], log: Logger) {
    super(opts);
    this.#log = log;
  }

  override consume(key: string | number, points?: number, options?: { [key: string]: unknown }) {
    const now = Date.now();
    if (now - this.#lastLog >= INSURANCE_LOG_EVERY_MS) {
      this.#lastLog = now;
      this.#log.warn(
        { keyPrefix: this.keyPrefix },
        'rate limiter cannot reach redis; counting in process memory (limits are per replica)',
      );
    }
    return super.consume(key, points, options);
  }
}

type Limiter = RLWrapperTimeouts;

function buildLimiter(
  settings: RateLimitSettings,
  route: RateLimitedRoute,
  redis: Redis,
  log: Logger,
): { limiter: Limiter; points: number } {
  const { points, windowS: duration } = budgetOf(settings, route);
  const keyPrefix = `${settings.key_prefix}:${route}`; // the library appends `:<key>`
  const insurance =
    settings.redis_down_policy === 'insurance'
      ? new InsuranceLimiter({ keyPrefix, points, duration }, log)
      : undefined;
  const store = new RateLimiterRedis({
    storeClient: redis,
    useRedisPackage: false, // ioredis: the Lua script is registered with defineCommand
    rejectIfRedisNotReady: true,
    keyPrefix,
    points,
    duration,
    insuranceLimiter: insurance,
  });
  // The wrapper inherits the store's insurance limiter, so a timeout falls back the same way.
  const limiter = new RLWrapperTimeouts({ limiter: store, timeoutMs: settings.redis_timeout_ms });
  return { limiter, points };
}

function setLimitHeaders(ctx: Context, limit: number, remaining: number, resetS: number): void {
  ctx.set('x-ratelimit-limit', String(limit));
  ctx.set('x-ratelimit-remaining', String(remaining));
  ctx.set('x-ratelimit-reset', String(resetS));
  // Merge rather than overwrite: another middleware may already expose headers of its own.
  // Koa 3 returns undefined for an unset header, and a string[] when it was set as an array.
  const current: unknown = ctx.response.get('access-control-expose-headers');
  const existing = [current ?? '']
    .flat()
    .join(',')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  const merged = [...new Set([...existing, ...RATE_LIMIT_HEADERS])];
  ctx.set('access-control-expose-headers', merged.join(', '));
}

/** The user a limit applies to: ctx.state.userId, set by auth before any limited route. */
export function rateLimitUser(ctx: Pick<Context, 'state'>): string {
  const { userId } = ctx.state;
  return typeof userId === 'string' && userId !== '' ? userId : FALLBACK_USER;
}

const secondsCeil = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

export function createRateLimits(
  settings: RateLimitSettings,
  redis: Redis,
  log: Logger,
  /** Called for every 429, e.g. to count rejections in metrics. */
  onReject: (route: RateLimitedRoute) => void = () => {},
): RateLimits {
  const rlLog = log.child({ module: 'rate-limit' });
  const limiters = new Map<RateLimitedRoute, { limiter: Limiter; points: number }>(
    RATE_LIMITED_ROUTES.map((route) => [route, buildLimiter(settings, route, redis, rlLog)]),
  );
  let rejected = 0;

  function entry(route: RateLimitedRoute) {
    const found = limiters.get(route);
    if (!found) throw new Error(`unknown rate-limited route ${route}`);
    return found;
  }

  /**
   * Counts one request of `userId` on `route`: the budget left, or RateLimitedError (429) over the
   * limit, or 503 rate_limiter_unavailable when neither Redis nor the insurance limiter can count.
   * The middleware below and every caller outside a route (an agent's tool calls) count here.
   */
  async function consume(route: RateLimitedRoute, userId: string, timing?: StageTimer): Promise<Consumed> {
    const { limiter, points } = entry(route);
    if (settings.disabled) return { limit: -1, remaining: -1, resetS: -1 };
    let res: RateLimiterRes;
    try {
      const counted = limiter.consume(userId);
      res = await (timing ? timing.time('ratelimit', counted) : counted);
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        rejected += 1;
        onReject(route);
        const resetS = Math.max(1, secondsCeil(err.msBeforeNext));
        throw new RateLimitedError(
          points,
          resetS,
          `rate limit of ${points} requests per ${budgetOf(settings, route).windowS} s reached for ${route}; retry in ${resetS} s`,
        );
      }
      // Only reachable with 'fail_closed' (or if the insurance limiter itself failed). errorHandler
      // logs 5xx once, with the cause.
      throw new HttpError(503, 'rate_limiter_unavailable', 'rate limiter unavailable; retry later', {
        cause: err,
        retryable: true,
      });
    }
    return { limit: points, remaining: res.remainingPoints, resetS: secondsCeil(res.msBeforeNext) };
  }

  function middleware(route: RateLimitedRoute): Middleware {
    entry(route); // an unknown route fails when the router is built, not on the first request
    return async function rateLimit(ctx: Context, next: Next): Promise<void> {
      try {
        const { limit, remaining, resetS } = await consume(route, rateLimitUser(ctx), timingOf(ctx));
        setLimitHeaders(ctx, limit, remaining, resetS);
      } catch (err) {
        if (err instanceof RateLimitedError) {
          // MUST set headers before throwing: errorHandler only replaces status and body.
          setLimitHeaders(ctx, err.limit, 0, err.resetS);
          ctx.set('retry-after', String(err.resetS));
        }
        throw err;
      }
      await next();
    };
  }

  async function budgets(userId: string): Promise<Record<RateLimitedRoute, Budget>> {
    const entries = await Promise.all(
      RATE_LIMITED_ROUTES.map(async (route): Promise<[RateLimitedRoute, Budget]> => {
        if (settings.disabled) return [route, { limit: -1, remaining: -1, reset_in_s: -1 }];
        const { limiter, points } = entry(route);
        let res: RateLimiterRes | null;
        try {
          // A single GET + PTTL of this user's key: never KEYS/SCAN (the original's KEYS *sub*).
          res = await limiter.get(userId);
        } catch (err) {
          throw new HttpError(503, 'rate_limiter_unavailable', 'rate limiter unavailable; retry later', {
            cause: err,
            retryable: true,
          });
        }
        if (res === null) return [route, { limit: points, remaining: points, reset_in_s: 0 }];
        return [
          route,
          {
            limit: points,
            remaining: Math.max(0, points - res.consumedPoints),
            reset_in_s: secondsCeil(res.msBeforeNext),
          },
        ];
      }),
    );
    return Object.fromEntries(entries) as Record<RateLimitedRoute, Budget>;
  }

  return { middleware, consume, budgets, rejections: () => rejected };
}
