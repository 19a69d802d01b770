// Dev-mode HS256 secrets and tokens: shared by the gateway's verifier and `npm run token`, so a
// fresh checkout works with no configuration. Never used when NEUROAGENT_AUTH__JWKS_URL is set.
// Imports jose and node builtins only (scripts/token.ts loads it without the gateway).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SignJWT } from 'jose';

/** HS256 wants a key at least as long as the hash (32 bytes); shorter secrets are refused at boot. */
export const MIN_SECRET_LENGTH = 32;

export interface DevSecret {
  secret: string;
  /** True when this call generated the file. */
  created: boolean;
  /** True when the file is readable or writable by group or others. */
  looseMode: boolean;
}

/**
 * Reads the dev secret from `path`, generating it (32 random bytes, base64url, mode 0600, parent
 * folder created) when absent. Safe against a concurrent generator: `wx` lets only one writer win.
 */
export async function loadOrCreateDevSecret(path: string): Promise<DevSecret> {
  try {
    return await readDevSecret(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  try {
    await writeFile(path, `${secret}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readDevSecret(path);
  }
  return { secret, created: true, looseMode: false };
}

async function readDevSecret(path: string): Promise<DevSecret> {
  const secret = (await readFile(path, 'utf8')).trim();
  const { mode } = await stat(path);
  return { secret, created: false, looseMode: (mode & 0o077) !== 0 };
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
}

export async function signDevToken(opts: DevTokenOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + opts.expiresInS);
  if (opts.issuer) jwt.setIssuer(opts.issuer);
  if (opts.audience) jwt.setAudience(opts.audience);
  return jwt.sign(secretKey(opts.secret));
}
