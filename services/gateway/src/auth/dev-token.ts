// Dev-mode HS256 secrets and tokens: shared by the gateway's verifier and `npm run token`, so a
// fresh checkout works with no configuration. Never used when NEUROAGENT_AUTH__JWKS_URL is set.
// Imports jose and the platform's secret-file module only (scripts/token.ts loads it without the
// gateway).
import { loadOrCreateSecretFile, type SecretFile } from '@neuroagent/platform/secret-file';
import { SignJWT } from 'jose';

/** HS256 wants a key at least as long as the hash (32 bytes); shorter secrets are refused at boot. */
export const MIN_SECRET_LENGTH = 32;

export type DevSecret = SecretFile;

/** Reads the dev secret from `path`, generating it when absent (see secret-file.ts). */
export async function loadOrCreateDevSecret(path: string): Promise<DevSecret> {
  return loadOrCreateSecretFile(path);
}

export function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

export interface DevTokenOptions {
  secret: string;
  sub: string;
  issuer?: string;
  audience?: string;
  expiresInS: number;
  /** Extra claims, e.g. `{ roles: ['admin'] }` (see adminClaims). */
  claims?: Record<string, unknown>;
}

/** The claims that make a token an admin's under AuthSettings admin_claim (dotted) and admin_role. */
export function adminClaims(adminClaim: string, adminRole: string): Record<string, unknown> {
  const path = adminClaim.split('.');
  let claims: Record<string, unknown> = { [path.at(-1) as string]: [adminRole] };
  for (const key of path.slice(0, -1).reverse()) claims = { [key]: claims };
  return claims;
}

export async function signDevToken(opts: DevTokenOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...opts.claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + opts.expiresInS);
  if (opts.issuer) jwt.setIssuer(opts.issuer);
  if (opts.audience) jwt.setAudience(opts.audience);
  return jwt.sign(secretKey(opts.secret));
}
