// Turns an Authorization header into the caller's user id, in one of three modes chosen at boot:
// JWKS (production), dev HS256, or disabled. Every rejection is an HttpError with a stable code and
// a reason that never echoes the token. Imports jose, the platform and http-error.ts only (no Koa).
import { isIP } from 'node:net';
import { ConfigError, type Logger } from '@neuroagent/platform';
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { HttpError } from '../http-error.ts';
import { loadOrCreateDevSecret, MIN_SECRET_LENGTH, secretKey } from './dev-token.ts';
import type { AuthSettings } from './settings.ts';

/** The user of every request when auth is disabled; app.ts sets it before authentication runs. */
export const ANONYMOUS_USER_ID = 'anonymous';
// 255: the ledger's owner column (varchar 255), the envelope's userId and this check agree.
export const MAX_USER_ID_LENGTH = 255;
// Node caps all headers at 16 KiB; a token larger than this is not worth parsing.
const MAX_TOKEN_LENGTH = 8192;

export type AuthMode = 'jwks' | 'dev' | 'disabled';

export interface AuthenticatedUser {
  userId: string;
  /** The token grants the /admin routes (AuthSettings admin_claim holds admin_role). */
  admin: boolean;
}

/** Which claim makes a caller an admin (AuthSettings admin_claim and admin_role). */
export interface AdminRule {
  /** The claim's dotted path, split: `realm_access.roles` → ['realm_access', 'roles']. */
  path: readonly string[];
  role: string;
}

export function adminRule(settings: Readonly<Pick<AuthSettings, 'admin_claim' | 'admin_role'>>): AdminRule {
  return { path: settings.admin_claim.split('.'), role: settings.admin_role };
}

/**
 * True when the claim at the rule's path is the role, or an array holding it. Only own properties
 * are followed, so a claim path such as `__proto__.x` finds nothing rather than Object.prototype.
 */
export function holdsAdminRole(payload: Readonly<Record<string, unknown>>, rule: AdminRule): boolean {
  let value: unknown = payload;
  for (const key of rule.path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
    if (!Object.hasOwn(value, key)) return false;
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value === 'string') return value === rule.role;
  return Array.isArray(value) && value.includes(rule.role);
}

export interface Verifier {
  readonly mode: AuthMode;
  /** Resolves to the caller, or rejects with HttpError 401 (or 503 when the JWKS cannot be fetched). */
  verify(authorizationHeader: string | undefined): Promise<AuthenticatedUser>;
}

const VAR = 'NEUROAGENT_AUTH__';

function configError(problems: { path: string; message: string }[]): ConfigError {
  const lines = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
  return new ConfigError(`invalid configuration:\n${lines}`, problems);
}

// ---------------------------------------------------------------------------------------------
// Boot
// ---------------------------------------------------------------------------------------------

export async function createVerifier(settings: Readonly<AuthSettings>, log: Logger): Promise<Verifier> {
  if (settings.disabled) {
    if (settings.jwks_url || settings.jwt_secret) {
      log.warn('NEUROAGENT_AUTH__DISABLED is true: JWKS_URL and JWT_SECRET are ignored');
    }
    return {
      mode: 'disabled',
      // Loopback only (assertSafeWhenDisabled): whoever can reach the port already owns the host.
      verify: async () => ({ userId: ANONYMOUS_USER_ID, admin: true }),
    };
  }
  if (settings.jwks_url) return createJwksVerifier(settings, log);
  return createDevVerifier(settings, log);
}

function createJwksVerifier(settings: Readonly<AuthSettings>, log: Logger): Verifier {
  const problems: { path: string; message: string }[] = [];
  let url: URL | undefined;
  try {
    url = new URL(settings.jwks_url);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      problems.push({ path: `${VAR}JWKS_URL`, message: 'must be an http(s) URL' });
    }
  } catch {
    problems.push({ path: `${VAR}JWKS_URL`, message: 'is not a valid URL' });
  }
  // Without both checks, any token signed by the provider (for any application) would be accepted.
  if (!settings.issuer) problems.push({ path: `${VAR}ISSUER`, message: 'is required when JWKS_URL is set' });
  if (!settings.audience) {
    problems.push({ path: `${VAR}AUDIENCE`, message: 'is required when JWKS_URL is set' });
  }
  if (problems.length > 0 || !url) throw configError(problems);
  if (settings.jwt_secret) log.warn('NEUROAGENT_AUTH__JWT_SECRET is ignored because JWKS_URL is set');

  const keys = createRemoteJWKSet(url);
  const options: JWTVerifyOptions = {
    algorithms: [...settings.algorithms],
    issuer: settings.issuer,
    audience: settings.audience,
    clockTolerance: settings.clock_tolerance_s,
    requiredClaims: ['exp', 'sub'],
  };
  log.info({ jwksUrl: url.href, issuer: settings.issuer, audience: settings.audience }, 'auth: JWKS mode');
  const rule = adminRule(settings);
  return {
    mode: 'jwks',
    verify: (header) => verifyHeader(header, (t) => jwtVerify(t, keys, options), rule, log),
  };
}

async function createDevVerifier(settings: Readonly<AuthSettings>, log: Logger): Promise<Verifier> {
  let secret = settings.jwt_secret;
  let source = `${VAR}JWT_SECRET`;
  if (!secret) {
    const dev = await loadOrCreateDevSecret(settings.dev_secret_file);
    secret = dev.secret;
    source = `${VAR}DEV_SECRET_FILE (${settings.dev_secret_file})`;
    if (dev.created) log.info({ file: settings.dev_secret_file }, 'auth: generated a dev JWT secret');
    if (dev.looseMode) {
      log.warn({ file: settings.dev_secret_file }, 'auth: the dev JWT secret file is readable by others');
    }
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw configError([{ path: source, message: `secret must be at least ${MIN_SECRET_LENGTH} characters` }]);
  }
  const options: JWTVerifyOptions = {
    algorithms: ['HS256'],
    clockTolerance: settings.clock_tolerance_s,
    requiredClaims: ['exp', 'sub'],
  };
  if (settings.issuer) options.issuer = settings.issuer;
  if (settings.audience) options.audience = settings.audience;
  log.warn(
    { secretFrom: settings.jwt_secret ? 'JWT_SECRET' : settings.dev_secret_file },
    'auth: dev HS256 mode is for local use only; set NEUROAGENT_AUTH__JWKS_URL in production',
  );
  const key = secretKey(secret);
  const rule = adminRule(settings);
  return {
    mode: 'dev',
    verify: (header) => verifyHeader(header, (t) => jwtVerify(t, key, options), rule, log),
  };
}

// ---------------------------------------------------------------------------------------------
// Per request
// ---------------------------------------------------------------------------------------------

function invalidToken(reason: string, cause?: unknown): HttpError {
  return new HttpError(401, 'invalid_token', `invalid token: ${reason}`, { cause });
}

/** The `Bearer <token>` part of the header, or a 401 `unauthenticated` when there is none. */
export function bearerToken(header: string | undefined): string {
  const value = header?.trim() ?? '';
  if (value === '') throw new HttpError(401, 'unauthenticated', 'missing bearer token');
  const match = /^Bearer\s+(\S+)$/i.exec(value);
  if (!match) {
    throw new HttpError(
      401,
      'unauthenticated',
      'expected an Authorization header of the form "Bearer <token>"',
    );
  }
  const token = match[1] as string;
  if (token.length > MAX_TOKEN_LENGTH) throw invalidToken('token too large');
  return token;
}

/** The user id prefixes S3 keys and Redis lookups, so it is checked as strictly as a path segment. */
export function checkUserId(sub: unknown): string {
  if (typeof sub !== 'string' || sub === '') throw invalidToken('missing "sub" claim');
  if (sub.length > MAX_USER_ID_LENGTH)
    throw invalidToken(`"sub" longer than ${MAX_USER_ID_LENGTH} characters`);
  // MUST reject '/': the user id is the first segment of storage keys.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[/\u0000-\u001f\u007f]/.test(sub)) throw invalidToken('"sub" contains "/" or a control character');
  return sub;
}

async function verifyHeader(
  header: string | undefined,
  verifyJwt: (token: string) => Promise<{ payload: JWTPayload }>,
  rule: AdminRule,
  log: Logger,
): Promise<AuthenticatedUser> {
  const token = bearerToken(header);
  let payload: JWTPayload;
  try {
    ({ payload } = await verifyJwt(token));
  } catch (err) {
    const mapped = mapJoseError(err);
    if (mapped.status === 401) log.debug({ code: (err as { code?: string }).code }, 'auth: token rejected');
    throw mapped;
  }
  return { userId: checkUserId(payload.sub), admin: holdsAdminRole(payload, rule) };
}

/** jose errors → HttpError. The reasons are fixed strings: jose messages are not shown to clients. */
export function mapJoseError(err: unknown): HttpError {
  if (err instanceof errors.JWTExpired) {
    return new HttpError(401, 'token_expired', 'token expired', { cause: err });
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'sub') return invalidToken('missing "sub" claim', err);
    if (err.claim === 'nbf') return invalidToken('token not yet valid', err);
    return invalidToken(`unexpected or missing "${err.claim}" claim`, err);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalidToken('bad signature', err);
  if (err instanceof errors.JOSEAlgNotAllowed) return invalidToken('signing algorithm not allowed', err);
  if (err instanceof errors.JWKSNoMatchingKey) return invalidToken('no matching signing key', err);
  if (err instanceof errors.JWKSMultipleMatchingKeys) {
    return invalidToken('signing key is ambiguous (set "kid")', err);
  }
  if (
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JOSENotSupported ||
    err instanceof errors.JWKInvalid
  ) {
    return invalidToken('malformed token', err);
  }
  // What is left is the key set itself: timeout, network error, non-200, bad JSON. Not the caller's fault.
  return new HttpError(503, 'auth_unavailable', 'cannot verify tokens right now (signing keys unavailable)', {
    cause: err,
    retryable: true,
  });
}

// ---------------------------------------------------------------------------------------------
// Disabled mode guard
// ---------------------------------------------------------------------------------------------

export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * With auth off anyone who can reach the port acts as `anonymous`, so the gateway MUST refuse to
 * bind anything but loopback. Throws ConfigError; the caller logs the warning that auth is off.
 */
export function assertSafeWhenDisabled(
  settings: Readonly<Pick<AuthSettings, 'disabled'>>,
  httpHost: string,
): void {
  if (!settings.disabled || isLoopbackHost(httpHost)) return;
  throw configError([
    {
      path: `${VAR}DISABLED`,
      message: `auth may only be disabled when NEUROAGENT_HTTP__HOST is loopback (127.0.0.1, ::1, localhost), not ${JSON.stringify(httpHost)}`,
    },
  ]);
}
