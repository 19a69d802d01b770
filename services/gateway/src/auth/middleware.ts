// Koa middleware that authenticates every request outside the public paths and puts the caller in
// ctx.state.userId. Must run after errorHandler (which renders the thrown HttpError as ErrorBody)
// and before any route that reads the user. Imports no jose: verification lives in verifier.ts.
import type { Context, Next } from 'koa';
import { HttpError } from '../http-error.ts';
import { timingOf } from '../server-timing.ts';
import type { Verifier } from './verifier.ts';

export interface AuthenticateOptions {
  /** Paths served without a token: exact (`/healthz`), or `/ui/*` for everything under `/ui/`. */
  publicPaths: string[];
}

export function authenticate(verifier: Verifier, opts: AuthenticateOptions) {
  const publicPaths = new Set(opts.publicPaths.filter((p) => !p.endsWith('/*')));
  // Kept with their trailing slash, so `/ui/*` opens `/ui/x` but never `/uix` or `/ui-admin`.
  const publicPrefixes = opts.publicPaths.filter((p) => p.endsWith('/*')).map((p) => p.slice(0, -1));
  return async function authenticateRequest(ctx: Context, next: Next): Promise<void> {
    if (publicPaths.has(ctx.path) || publicPrefixes.some((p) => ctx.path.startsWith(p))) return next();
    try {
      const { userId, admin } = await timingOf(ctx).time('auth', () =>
        verifier.verify(ctx.get('authorization') || undefined),
      );
      ctx.state.userId = userId;
      ctx.state.admin = admin;
    } catch (err) {
      // RFC 6750 §3: every 401 names the scheme; a bad or expired token also says invalid_token.
      if (err instanceof HttpError && err.status === 401) {
        ctx.set(
          'www-authenticate',
          err.code === 'unauthenticated' ? 'Bearer' : 'Bearer error="invalid_token"',
        );
      }
      throw err;
    }
    await next();
  };
}
