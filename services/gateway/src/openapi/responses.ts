// Responses many gateway routes share, for the catalogs (routes-catalog.ts, threads-catalog.ts).
// A module of its own so the catalogs import it, not each other.
import type { ResponseSpec } from './registry.ts';

export const LIMIT_HEADERS = {
  'x-ratelimit-limit': 'Requests per window on this route (-1 when rate limiting is off)',
  'x-ratelimit-remaining': 'Requests left in this window',
  'x-ratelimit-reset': 'Seconds until the window resets',
};
export const RATE_LIMITED: ResponseSpec = {
  description: 'Over the rate limit (code rate_limited)',
  headers: { 'retry-after': 'Seconds to wait before retrying', ...LIMIT_HEADERS },
};
export const UNAUTHORIZED: ResponseSpec = {
  description:
    'Missing, invalid or expired bearer token (code unauthenticated, invalid_token or token_expired)',
  headers: { 'www-authenticate': 'Bearer, with error="invalid_token" for a bad or expired token' },
};
export const RETRY_AFTER = {
  'retry-after': 'Seconds to wait before retrying (NEUROAGENT_HTTP__RETRY_AFTER_S)',
};
export const UNAVAILABLE: ResponseSpec = {
  description: 'A dependency (NATS, Redis, the token signing keys) is unavailable; retry later',
  headers: RETRY_AFTER,
};
