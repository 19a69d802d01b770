// Gateway authentication against real jose: dev HS256 tokens, the dev secret file, JWKS mode
// against a local key-set server, the disabled-mode bind guard, the Koa middleware and the token CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, createLogger, loadConfig } from '@neuroagent/platform';
import { Type } from '@sinclair/typebox';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import Koa from 'koa';
import { loadOrCreateDevSecret, signDevToken } from '../src/auth/dev-token.ts';
import { authenticate } from '../src/auth/middleware.ts';
import { AuthSettings } from '../src/auth/settings.ts';
import { withVerifiedTokenCache } from '../src/auth/verified-tokens.ts';
import { assertSafeWhenDisabled, createVerifier, type Verifier } from '../src/auth/verifier.ts';
import { errorHandler, HttpError } from '../src/http-error.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const log = createLogger('auth-test', 'silent');
const SECRET = 'a-dev-secret-that-is-long-enough-0123456789';

/** Settings as the gateway would load them from NEUROAGENT_AUTH__* variables. */
function settings(env: Record<string, string> = {}): AuthSettings {
  const prefixed = Object.fromEntries(Object.entries(env).map(([k, v]) => [`NEUROAGENT_AUTH__${k}`, v]));
  return loadConfig(Type.Object({ auth: AuthSettings }), 'NEUROAGENT', prefixed).auth;
}

async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<HttpError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof HttpError, `expected HttpError, got ${String(err)}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${status} ${code}`);
}

const nowS = () => Math.floor(Date.now() / 1000);

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'neuroagent-auth-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('createVerifier (dev HS256 mode)', () => {
  let verifier: Verifier;
  before(async () => {
    verifier = await createVerifier(settings({ JWT_SECRET: SECRET }), log);
  });

  it('accepts a valid token and returns its sub as the user id', async () => {
    const token = await signDevToken({ secret: SECRET, sub: 'alice', expiresInS: 60 });
    assert.equal(verifier.mode, 'dev');
    assert.deepEqual(await verifier.verify(`Bearer ${token}`), { userId: 'alice', admin: false });
  });

  it('answers 401 unauthenticated without a header or with another scheme', async () => {
    const err = await rejectsWith(verifier.verify(undefined), 401, 'unauthenticated');
    assert.equal(err.message, 'missing bearer token');
    await rejectsWith(verifier.verify(''), 401, 'unauthenticated');
    await rejectsWith(verifier.verify('Basic YWxpY2U6cHc='), 401, 'unauthenticated');
  });

  it('answers 401 invalid_token for garbage, without echoing it', async () => {
    const err = await rejectsWith(verifier.verify('Bearer not.a.jwt-secret-stuff'), 401, 'invalid_token');
    assert.doesNotMatch(err.message, /secret-stuff/);
  });

  it('answers 401 invalid_token for a token signed with another secret', async () => {
    const token = await signDevToken({ secret: `${SECRET}-other`, sub: 'alice', expiresInS: 60 });
    const err = await rejectsWith(verifier.verify(`Bearer ${token}`), 401, 'invalid_token');
    assert.doesNotMatch(err.message, new RegExp(token.slice(0, 20)));
  });

  it('answers 401 token_expired for an expired token (beyond the clock tolerance)', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuedAt(nowS() - 120)
      .setExpirationTime(nowS() - 60)
      .sign(new TextEncoder().encode(SECRET));
    await rejectsWith(verifier.verify(`Bearer ${token}`), 401, 'token_expired');
  });

  it('answers 401 invalid_token for a missing, too long or slash-bearing sub', async () => {
    const key = new TextEncoder().encode(SECRET);
    const noSub = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1m')
      .sign(key);
    await rejectsWith(verifier.verify(`Bearer ${noSub}`), 401, 'invalid_token');
    for (const sub of ['', 'a/b', '../x', 'x'.repeat(256), 'a\nb']) {
      const token = await signDevToken({ secret: SECRET, sub, expiresInS: 60 });
      await rejectsWith(verifier.verify(`Bearer ${token}`), 401, 'invalid_token');
    }
  });

  it('answers 401 invalid_token for a token without exp', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .sign(new TextEncoder().encode(SECRET));
    await rejectsWith(verifier.verify(`Bearer ${token}`), 401, 'invalid_token');
  });

  it('checks issuer and audience when they are set', async () => {
    const strict = await createVerifier(settings({ JWT_SECRET: SECRET, ISSUER: 'me', AUDIENCE: 'gw' }), log);
    const good = await signDevToken({
      secret: SECRET,
      sub: 'bob',
      issuer: 'me',
      audience: 'gw',
      expiresInS: 60,
    });
    assert.deepEqual(await strict.verify(`Bearer ${good}`), { userId: 'bob', admin: false });
    const bad = await signDevToken({
      secret: SECRET,
      sub: 'bob',
      issuer: 'me',
      audience: 'x',
      expiresInS: 60,
    });
    await rejectsWith(strict.verify(`Bearer ${bad}`), 401, 'invalid_token');
  });

  it('refuses a secret shorter than 32 characters at boot', async () => {
    await assert.rejects(createVerifier(settings({ JWT_SECRET: 'short' }), log), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /NEUROAGENT_AUTH__JWT_SECRET/);
      return true;
    });
  });
});

describe('dev secret file', () => {
  it('is generated once with mode 0600, then reused', async () => {
    const file = join(tmp, 'nested', 'dev-jwt-secret');
    const first = await createVerifier(settings({ DEV_SECRET_FILE: file }), log);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const { mtimeMs } = await stat(file);
    const second = await createVerifier(settings({ DEV_SECRET_FILE: file }), log);
    assert.equal((await stat(file)).mtimeMs, mtimeMs);

    const { secret, created } = await loadOrCreateDevSecret(file);
    assert.equal(created, false);
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    const token = await signDevToken({ secret, sub: 'carol', expiresInS: 60 });
    assert.deepEqual(await first.verify(`Bearer ${token}`), { userId: 'carol', admin: false });
    assert.deepEqual(await second.verify(`Bearer ${token}`), { userId: 'carol', admin: false });
  });
});

// ---------------------------------------------------------------------------------------------

describe('createVerifier (JWKS mode)', () => {
  const ISSUER = 'https://idp.test/';
  const AUDIENCE = 'neuroagent';
  let server: Server;
  let jwksUrl: string;
  let privateKey: CryptoKey;
  let verifier: Verifier;

  before(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    verifier = await createVerifier(settings({ JWKS_URL: jwksUrl, ISSUER, AUDIENCE }), log);
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });

  function rsToken(claims: { iss?: string; aud?: string; kid?: string; sub?: string } = {}): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: claims.kid ?? 'k1' })
      .setSubject(claims.sub ?? 'dave')
      .setIssuer(claims.iss ?? ISSUER)
      .setAudience(claims.aud ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
  }

  it('accepts a token signed by a key of the set', async () => {
    assert.equal(verifier.mode, 'jwks');
    assert.deepEqual(await verifier.verify(`Bearer ${await rsToken()}`), { userId: 'dave', admin: false });
  });

  it('answers 401 invalid_token for a wrong issuer, a wrong audience or an unknown kid', async () => {
    await rejectsWith(
      verifier.verify(`Bearer ${await rsToken({ iss: 'https://evil.test/' })}`),
      401,
      'invalid_token',
    );
    await rejectsWith(verifier.verify(`Bearer ${await rsToken({ aud: 'other-app' })}`), 401, 'invalid_token');
    await rejectsWith(verifier.verify(`Bearer ${await rsToken({ kid: 'k2' })}`), 401, 'invalid_token');
  });

  it('answers 401 invalid_token for an HS256 token (algorithm not allowed)', async () => {
    const token = await signDevToken({
      secret: SECRET,
      sub: 'dave',
      issuer: ISSUER,
      audience: AUDIENCE,
      expiresInS: 60,
    });
    await rejectsWith(verifier.verify(`Bearer ${token}`), 401, 'invalid_token');
  });

  it('answers 503 auth_unavailable when the key set cannot be fetched', async () => {
    const closed = createServer();
    await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((done) => closed.close(() => done()));
    const down = await createVerifier(
      settings({ JWKS_URL: `http://127.0.0.1:${port}/jwks.json`, ISSUER, AUDIENCE }),
      log,
    );
    await rejectsWith(down.verify(`Bearer ${await rsToken()}`), 503, 'auth_unavailable');
  });

  it('fails at boot naming ISSUER and AUDIENCE when they are missing', async () => {
    await assert.rejects(createVerifier(settings({ JWKS_URL: jwksUrl }), log), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /NEUROAGENT_AUTH__ISSUER/);
      assert.match(err.message, /NEUROAGENT_AUTH__AUDIENCE/);
      return true;
    });
  });

  it('rejects HS* in NEUROAGENT_AUTH__ALGORITHMS at config load', () => {
    assert.throws(() => settings({ ALGORITHMS: 'RS256,HS256' }), /NEUROAGENT_AUTH__ALGORITHMS/);
    assert.deepEqual(settings({ ALGORITHMS: 'ES256, EdDSA' }).algorithms, ['ES256', 'EdDSA']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('disabled mode', () => {
  it('returns anonymous without looking at the header', async () => {
    const verifier = await createVerifier(settings({ DISABLED: 'true' }), log);
    assert.equal(verifier.mode, 'disabled');
    assert.deepEqual(await verifier.verify(undefined), { userId: 'anonymous', admin: true });
  });

  it('assertSafeWhenDisabled refuses a public bind and accepts loopback', () => {
    const off = settings({ DISABLED: 'true' });
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.com']) {
      assert.throws(
        () => assertSafeWhenDisabled(off, host),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /NEUROAGENT_AUTH__DISABLED/);
          return true;
        },
      );
    }
    for (const host of ['127.0.0.1', '::1', 'localhost']) assertSafeWhenDisabled(off, host);
    assertSafeWhenDisabled(settings(), '0.0.0.0');
  });
});

// ---------------------------------------------------------------------------------------------

describe('authenticate middleware', () => {
  let server: Server;
  let url: string;
  before(async () => {
    const verifier = await createVerifier(settings({ JWT_SECRET: SECRET }), log);
    const app = new Koa();
    app.silent = true;
    app.use(errorHandler(log));
    app.use(authenticate(verifier, { publicPaths: ['/healthz', '/metrics'] }));
    app.use((ctx) => {
      ctx.body = { path: ctx.path, userId: ctx.state.userId ?? null };
    });
    server = createServer(app.callback());
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });

  it('answers 401 with www-authenticate and the ErrorBody without a token', async () => {
    const res = await fetch(`${url}/tasks`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(await res.json(), { code: 'unauthenticated', message: 'missing bearer token' });
  });

  it('answers 401 invalid_token with the error in www-authenticate for a bad token', async () => {
    const res = await fetch(`${url}/tasks`, { headers: { authorization: 'Bearer garbage' } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    assert.equal(((await res.json()) as { code: string }).code, 'invalid_token');
  });

  it('sets ctx.state.userId from a valid token', async () => {
    const token = await signDevToken({ secret: SECRET, sub: 'erin', expiresInS: 60 });
    const res = await fetch(`${url}/tasks`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { path: '/tasks', userId: 'erin' });
  });

  it('lets exact public paths through without a token', async () => {
    const res = await fetch(`${url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { path: '/healthz', userId: null });
    assert.equal((await fetch(`${url}/healthz/x`)).status, 401);
  });
});

// ---------------------------------------------------------------------------------------------

describe('scripts/token.ts', () => {
  it('prints a token that the dev verifier accepts, creating the secret file when absent', async () => {
    const file = join(tmp, 'cli', 'dev-jwt-secret');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['scripts/token.ts', '--sub', 'frank', '--expires-in', '120'],
      { cwd: ROOT, env: { PATH: process.env.PATH, NEUROAGENT_AUTH__DEV_SECRET_FILE: file } },
    );
    const verifier = await createVerifier(settings({ DEV_SECRET_FILE: file }), log);
    assert.deepEqual(await verifier.verify(`Bearer ${stdout.trim()}`), { userId: 'frank', admin: false });
  });
});

describe('admin role', () => {
  it('is granted by the role at the configured claim path, as a string or in an array', async () => {
    const keycloak = await createVerifier(
      settings({ JWT_SECRET: SECRET, ADMIN_CLAIM: 'realm_access.roles', ADMIN_ROLE: 'ops-admin' }),
      log,
    );
    const sign = (claims: Record<string, unknown>) =>
      signDevToken({ secret: SECRET, sub: 'gina', expiresInS: 60, claims });
    const admin = await sign({ realm_access: { roles: ['user', 'ops-admin'] } });
    assert.deepEqual(await keycloak.verify(`Bearer ${admin}`), { userId: 'gina', admin: true });
    const single = await sign({ realm_access: { roles: 'ops-admin' } });
    assert.equal((await keycloak.verify(`Bearer ${single}`)).admin, true);
    for (const claims of [
      {},
      { roles: ['ops-admin'] }, // the default path, not the configured one
      { realm_access: { roles: ['user'] } },
      { realm_access: { roles: 'ops-admin-not' } },
      { realm_access: ['ops-admin'] },
      { realm_access: { roles: [['ops-admin']] } },
    ]) {
      assert.equal(
        (await keycloak.verify(`Bearer ${await sign(claims)}`)).admin,
        false,
        JSON.stringify(claims),
      );
    }
  });

  it('does not follow inherited properties of a claim path', async () => {
    const proto = await createVerifier(
      settings({ JWT_SECRET: SECRET, ADMIN_CLAIM: '__proto__.constructor', ADMIN_ROLE: 'admin' }),
      log,
    );
    const token = await signDevToken({ secret: SECRET, sub: 'hal', expiresInS: 60 });
    assert.equal((await proto.verify(`Bearer ${token}`)).admin, false);
  });

  it('npm run token -- --admin prints a token carrying the role at the configured claim', async () => {
    const file = join(tmp, 'cli-admin', 'dev-jwt-secret');
    const env = {
      PATH: process.env.PATH,
      NEUROAGENT_AUTH__DEV_SECRET_FILE: file,
      NEUROAGENT_AUTH__ADMIN_CLAIM: 'realm_access.roles',
    };
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, ['scripts/token.ts', '--sub', 'ops', ...args], {
        cwd: ROOT,
        env,
      });
    const verifier = await createVerifier(
      settings({ DEV_SECRET_FILE: file, ADMIN_CLAIM: 'realm_access.roles' }),
      log,
    );
    const admin = (await run(['--admin'])).stdout.trim();
    assert.deepEqual(await verifier.verify(`Bearer ${admin}`), { userId: 'ops', admin: true });
    const plain = (await run([])).stdout.trim();
    assert.deepEqual(await verifier.verify(`Bearer ${plain}`), { userId: 'ops', admin: false });
  });
});

describe('verified-token cache', () => {
  /** The real dev-mode verifier without its cache, counting how often it checks a signature. */
  async function counted() {
    const inner = await createVerifier(settings({ JWT_SECRET: SECRET, CACHE_TTL_S: '0' }), log);
    const counter = { calls: 0 };
    const verifier: Verifier = {
      mode: inner.mode,
      verify: (h) => {
        counter.calls++;
        return inner.verify(h);
      },
    };
    return { verifier, counter };
  }
  const bearer = async (sub: string, expiresInS = 600) =>
    `Bearer ${await signDevToken({ secret: SECRET, sub, expiresInS })}`;

  it('checks a token once per TTL, and never trusts it past its exp', async () => {
    const { verifier, counter } = await counted();
    let clock = Date.now();
    const cached = withVerifiedTokenCache(verifier, { ttlMs: 60_000, maxEntries: 10, now: () => clock });
    const long = await bearer('carol');
    assert.equal((await cached.verify(long)).userId, 'carol');
    assert.equal((await cached.verify(long)).userId, 'carol');
    assert.equal(counter.calls, 1, 'second request served from the cache');
    clock += 61_000;
    await cached.verify(long);
    assert.equal(counter.calls, 2, 'checked again after the TTL');

    const short = await bearer('dave', 2);
    clock = Date.now();
    await cached.verify(short);
    clock += 3_000; // past exp, well within the TTL
    await cached.verify(short).catch(() => {});
    assert.equal(counter.calls, 4, 'an expired token is checked again (and jose decides)');
  });

  it('never caches a rejection, and forgets the least recently used token past maxEntries', async () => {
    const { verifier, counter } = await counted();
    const cached = withVerifiedTokenCache(verifier, { ttlMs: 60_000, maxEntries: 2 });
    await rejectsWith(cached.verify('Bearer not.a.token'), 401, 'invalid_token');
    await rejectsWith(cached.verify('Bearer not.a.token'), 401, 'invalid_token');
    assert.equal(counter.calls, 2);
    const [a, b, c] = [await bearer('a'), await bearer('b'), await bearer('c')];
    for (const t of [a, b, a, c]) await cached.verify(t); // c evicts b (a was used more recently)
    const before = counter.calls;
    await cached.verify(a);
    assert.equal(counter.calls, before, 'a is still cached');
    await cached.verify(b);
    assert.equal(counter.calls, before + 1, 'b was evicted');
  });

  it('is on by default and off with CACHE_TTL_S=0', async () => {
    assert.equal(settings().cache_ttl_s, 60);
    const { verifier } = await counted();
    assert.equal(withVerifiedTokenCache(verifier, { ttlMs: 0, maxEntries: 10 }), verifier);
  });
});
