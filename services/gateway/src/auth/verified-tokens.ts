// Remembers tokens that verified, so a client sending the same bearer token on every request pays
// for the signature check once per `ttlMs` instead of on every call (about a quarter of the
// gateway's own time on a no-op task). Only successes are kept; an entry never outlives the
// token's `exp`, nor `ttlMs`, which bounds how long a JWKS key rotation takes to apply.
import { decodeJwt } from 'jose';
import { type AuthenticatedUser, bearerToken, type Verifier } from './verifier.ts';

interface Entry {
  user: AuthenticatedUser;
  until: number;
}

export interface VerifiedTokenCacheOptions {
  ttlMs: number;
  maxEntries: number;
  now?: () => number;
}

export function withVerifiedTokenCache(inner: Verifier, opts: VerifiedTokenCacheOptions): Verifier {
  if (inner.mode === 'disabled' || opts.ttlMs <= 0 || opts.maxEntries <= 0) return inner;
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>(); // insertion order = least recently used first
  return {
    mode: inner.mode,
    async verify(header) {
      const key = header ?? '';
      const hit = entries.get(key);
      if (hit) {
        entries.delete(key);
        if (hit.until > now()) {
          entries.set(key, hit);
          return hit.user;
        }
      }
      const user = await inner.verify(header);
      // It verified, so the payload decodes; exp is required by both verifier modes.
      const { exp } = decodeJwt(bearerToken(header));
      if (typeof exp !== 'number') return user;
      entries.set(key, { user, until: Math.min(exp * 1000, now() + opts.ttlMs) });
      if (entries.size > opts.maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
      return user;
    },
  };
}
