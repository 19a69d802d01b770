// Rate limits against real Redis: a tiny Koa app with the gateway's errorHandler, the limiter
// middleware on three routes and GET /rate-limit, driven over HTTP with concurrent fetches.
// The Redis-down cases use a private redis-server (never the shared one on 6379).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Router from '@koa/router';
import { connectRedis, createLogger, loadConfig, type Redis } from '@neuroagent/platform';
import { TEST_REDIS_URL, waitFor } from '@neuroagent/platform/testing';
import { Type } from '@sinclair/typebox';
import Koa from 'koa';
import { errorHandler } from '../src/http-error.ts';
import { type Budget, createRateLimits, type RateLimits } from '../src/rate-limit/limiter.ts';
import { registerRateLimitRoute } from '../src/rate-limit/routes.ts';
import { RateLimitSettings } from '../src/rate-limit/settings.ts';

const log = createLogger('rate-limit-test', process.env.RL_TEST_LOG ?? 'silent');
const runId = randomBytes(4).toString('hex');
let prefixSeq = 0;
const uniquePrefix = () => `test:rl_${runId}_${++prefixSeq}`;

/** Settings through the real env loader, as main.ts will mount them at `rate_limit`. */
function settingsFrom(env: Record<string, string>): RateLimitSettings {
  const vars = Object.fromEntries(Object.entries(env).map(([k, v]) => [`NEUROAGENT_RATE_LIMIT__${k}`, v]));
  return loadConfig(Type.Object({ rate_limit: RateLimitSettings }), 'NEUROAGENT', vars).rate_limit;
}

interface TestApp {
  url: string;
  limits: RateLimits;
  close(): Promise<void>;
}

async function startApp(settings: RateLimitSettings, redis: Redis): Promise<TestApp> {
  const limits = createRateLimits(settings, redis, log);
  const app = new Koa();
  app.silent = true;
  app.use(async function fakeAuth(ctx, next) {
    ctx.state.userId = ctx.get('x-user') || 'anonymous';
    await next();
  });
  app.use(errorHandler(log));
  const router = new Router();
  const ok = (ctx: Koa.Context) => {
    ctx.body = { ok: true };
  };
  router.post('/tools/run-python', limits.middleware('run_python'), ok);
  router.post('/tools/circuit-population-analysis', limits.middleware('circuit'), ok);
  router.post('/tasks', limits.middleware('submit'), ok);
  registerRateLimitRoute(router, { limits });
  app.use(router.routes());
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    limits,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function call(base: string, path: string, user = 'alice', method = 'POST') {
  const started = performance.now();
  const res = await fetch(`${base}${path}`, { method, headers: { 'x-user': user } });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, headers: res.headers, body, ms: performance.now() - started };
}

const concurrently = <T>(n: number, f: () => Promise<T>) => Promise.all(Array.from({ length: n }, f));
const statuses = (rs: { status: number }[]) => rs.map((r) => r.status);
const count = (rs: { status: number }[], status: number) => rs.filter((r) => r.status === status).length;

// ---------------------------------------------------------------------------------------------
// Shared Redis
// ---------------------------------------------------------------------------------------------

describe('rate limits (real Redis)', () => {
  let redis: Redis;
  const prefixes: string[] = [];
  let app: TestApp | undefined;

  const start = async (env: Record<string, string>) => {
    const key_prefix = uniquePrefix();
    prefixes.push(key_prefix);
    app = await startApp(settingsFrom({ KEY_PREFIX: key_prefix, ...env }), redis);
    return { app, key_prefix };
  };

  before(async () => {
    redis = connectRedis(TEST_REDIS_URL, 'rate-limit-test', log);
    // Until ioredis is 'ready' the limiter applies the Redis-down policy (rejectIfRedisNotReady).
    await redis.ping();
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });
  after(async () => {
    for (const p of prefixes) {
      for (const route of ['run_python', 'circuit', 'submit', 'chat']) {
        const keys = ['alice', 'bob', 'anonymous'].map((u) => `${p}:${route}:${u}`);
        await redis.del(...keys);
      }
    }
    await redis.quit();
  });

  it('allows exactly N of N+k concurrent requests and answers the rest 429 with retry-after', async () => {
    const { app, key_prefix } = await start({ RUN_PYTHON_POINTS: '10', RUN_PYTHON_WINDOW_S: '60' });
    const results = await concurrently(25, () => call(app.url, '/tools/run-python'));
    assert.equal(count(results, 200), 10, `statuses: ${statuses(results).join(',')}`);
    assert.equal(count(results, 429), 15);
    for (const r of results.filter((x) => x.status === 429)) {
      assert.deepEqual(Object.keys(r.body).sort(), ['code', 'message']);
      assert.equal(r.body.code, 'rate_limited');
      const retryAfter = Number(r.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
      assert.equal(r.headers.get('x-ratelimit-limit'), '10');
      assert.equal(r.headers.get('x-ratelimit-remaining'), '0');
      assert.equal(r.headers.get('x-ratelimit-reset'), String(retryAfter));
      assert.match(r.headers.get('access-control-expose-headers') ?? '', /x-ratelimit-reset/);
    }
    const remaining = results
      .filter((x) => x.status === 200)
      .map((r) => Number(r.headers.get('x-ratelimit-remaining')))
      .sort((a, b) => a - b);
    assert.deepEqual(remaining, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each success saw a distinct count');
    // One counter per user and route, with the window's expiry, at the documented key.
    assert.equal(await redis.get(`${key_prefix}:run_python:alice`), '25');
    const ttl = await redis.pttl(`${key_prefix}:run_python:alice`);
    assert.ok(ttl > 0 && ttl <= 60_000, `pttl ${ttl}`);
    assert.equal(app.limits.rejections(), 15);
  });

  it('sends the limit, remaining and reset headers on success', async () => {
    const { app } = await start({ SUBMIT_POINTS: '3', SUBMIT_WINDOW_S: '120' });
    const first = await call(app.url, '/tasks');
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-ratelimit-limit'), '3');
    assert.equal(first.headers.get('x-ratelimit-remaining'), '2');
    const reset = Number(first.headers.get('x-ratelimit-reset'));
    assert.ok(reset >= 119 && reset <= 120, `reset ${reset}`);
    assert.equal(first.headers.get('retry-after'), null);
    assert.deepEqual(
      (first.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim()),
      ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    );
    const second = await call(app.url, '/tasks');
    assert.equal(second.headers.get('x-ratelimit-remaining'), '1');
  });

  it('isolates users: alice exhausted, bob unaffected', async () => {
    const { app } = await start({ RUN_PYTHON_POINTS: '3' });
    const alice = await concurrently(5, () => call(app.url, '/tools/run-python', 'alice'));
    assert.equal(count(alice, 200), 3);
    const bob = await call(app.url, '/tools/run-python', 'bob');
    assert.equal(bob.status, 200);
    assert.equal(bob.headers.get('x-ratelimit-remaining'), '2');
  });

  it('isolates routes: run_python exhausted, circuit and submit unaffected', async () => {
    const { app } = await start({ RUN_PYTHON_POINTS: '2', CIRCUIT_POINTS: '2', SUBMIT_POINTS: '2' });
    const python = await concurrently(4, () => call(app.url, '/tools/run-python'));
    assert.equal(count(python, 200), 2);
    const circuit = await call(app.url, '/tools/circuit-population-analysis');
    assert.equal(circuit.status, 200);
    assert.equal(circuit.headers.get('x-ratelimit-remaining'), '1');
    const submit = await call(app.url, '/tasks');
    assert.equal(submit.status, 200);
    assert.equal(submit.headers.get('x-ratelimit-remaining'), '1');
  });

  it('GET /rate-limit reports each route budget for the caller without consuming', async () => {
    const { app } = await start({
      RUN_PYTHON_POINTS: '5',
      RUN_PYTHON_WINDOW_S: '600',
      CIRCUIT_POINTS: '2',
      SUBMIT_POINTS: '7',
    });
    await concurrently(3, () => call(app.url, '/tools/run-python'));
    await concurrently(4, () => call(app.url, '/tools/circuit-population-analysis'));
    const first = await call(app.url, '/rate-limit', 'alice', 'GET');
    assert.equal(first.status, 200);
    const body = first.body as unknown as Record<'run_python' | 'circuit' | 'submit' | 'chat', Budget>;
    assert.deepEqual(Object.keys(body).sort(), ['chat', 'circuit', 'run_python', 'submit']);
    assert.equal(body.run_python.limit, 5);
    assert.equal(body.run_python.remaining, 2);
    assert.ok(body.run_python.reset_in_s > 590 && body.run_python.reset_in_s <= 600);
    assert.equal(body.circuit.remaining, 0, 'over-limit attempts never show a negative budget');
    assert.deepEqual(body.submit, { limit: 7, remaining: 7, reset_in_s: 0 });
    const again = await call(app.url, '/rate-limit', 'alice', 'GET');
    assert.equal((again.body.run_python as { remaining: number }).remaining, 2, 'reading consumed nothing');
    const bob = await call(app.url, '/rate-limit', 'bob', 'GET');
    assert.deepEqual(bob.body.run_python, { limit: 5, remaining: 5, reset_in_s: 0 });
  });

  it('when disabled, limits nothing and sends -1 headers and budgets', async () => {
    const { app, key_prefix } = await start({ DISABLED: 'true', RUN_PYTHON_POINTS: '1' });
    const results = await concurrently(5, () => call(app.url, '/tools/run-python'));
    assert.deepEqual(statuses(results), [200, 200, 200, 200, 200]);
    for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) {
      assert.equal(results[0]?.headers.get(h), '-1');
    }
    assert.equal(await redis.exists(`${key_prefix}:run_python:alice`), 0, 'nothing written to Redis');
    const budgets = await call(app.url, '/rate-limit', 'alice', 'GET');
    assert.deepEqual(budgets.body.run_python, { limit: -1, remaining: -1, reset_in_s: -1 });
  });
});

// ---------------------------------------------------------------------------------------------
// Private Redis that the tests kill or freeze
// ---------------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

interface PrivateRedis {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rl-redis-'));
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--dir', dir],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}/0`;
  const probe = connectRedis(url, 'rl-probe', log);
  try {
    await waitFor(
      () =>
        probe.ping().then(
          (p) => p === 'PONG',
          () => false,
        ),
      5000,
      'private redis-server',
    );
  } finally {
    probe.disconnect();
  }
  return {
    url,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((resolve) => proc.once('exit', resolve));
        proc.kill('SIGCONT'); // in case a test froze it
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('rate limits when Redis is down', () => {
  let server: PrivateRedis;
  let redis: Redis;
  let app: TestApp;

  const setup = async (env: Record<string, string>) => {
    server = await startPrivateRedis();
    redis = connectRedis(server.url, 'rl-down-test', log);
    await redis.ping();
    app = await startApp(
      settingsFrom({ KEY_PREFIX: uniquePrefix(), REDIS_TIMEOUT_MS: '200', ...env }),
      redis,
    );
  };
  const kill = async () => {
    const exited = new Promise((resolve) => server.proc.once('exit', resolve));
    server.proc.kill('SIGKILL');
    await exited;
    await waitFor(async () => redis.status !== 'ready', 2000, 'ioredis to notice the dead server');
  };

  afterEach(async () => {
    await app.close();
    redis.disconnect();
    await server.stop();
  });

  it("'insurance' keeps limiting in process memory, N allowed then 429, without hanging", async () => {
    await setup({ REDIS_DOWN_POLICY: 'insurance', RUN_PYTHON_POINTS: '4' });
    assert.equal((await call(app.url, '/tools/run-python')).status, 200, 'counted in Redis while it is up');
    await kill();
    const results = await concurrently(7, () => call(app.url, '/tools/run-python'));
    // The memory counter starts empty: Redis' count is not visible to it (documented in limiter.ts).
    assert.equal(count(results, 200), 4, `statuses: ${statuses(results).join(',')}`);
    assert.equal(count(results, 429), 3);
    for (const r of results) assert.ok(r.ms < 2000, `answered in ${Math.round(r.ms)} ms`);
    const rejected = results.find((r) => r.status === 429);
    assert.equal(rejected?.headers.get('x-ratelimit-remaining'), '0');
    assert.ok(Number(rejected?.headers.get('retry-after')) >= 1);
    const budgets = await call(app.url, '/rate-limit', 'alice', 'GET');
    assert.equal(budgets.status, 200);
    assert.equal((budgets.body.run_python as { remaining: number }).remaining, 0);
  });

  it("'fail_closed' answers 503 rate_limiter_unavailable, without hanging", async () => {
    await setup({ REDIS_DOWN_POLICY: 'fail_closed' });
    assert.equal((await call(app.url, '/tasks')).status, 200);
    await kill();
    const r = await call(app.url, '/tasks');
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, {
      code: 'rate_limiter_unavailable',
      message: 'rate limiter unavailable; retry later',
    });
    assert.ok(r.ms < 2000, `answered in ${Math.round(r.ms)} ms`);
    const budgets = await call(app.url, '/rate-limit', 'alice', 'GET');
    assert.equal(budgets.status, 503);
  });

  it('a hung Redis (connection open, no answers) hits the timeout instead of stalling', async () => {
    await setup({ REDIS_DOWN_POLICY: 'fail_closed' });
    assert.equal((await call(app.url, '/tasks')).status, 200);
    server.proc.kill('SIGSTOP');
    assert.equal(redis.status, 'ready', 'the socket stays open, so only the timeout can help');
    const r = await call(app.url, '/tasks');
    assert.equal(r.status, 503);
    assert.equal(r.body.code, 'rate_limiter_unavailable');
    assert.ok(r.ms < 1000, `answered in ${Math.round(r.ms)} ms (timeout 200 ms)`);
  });

  it("a hung Redis under 'insurance' falls back to memory within the timeout", async () => {
    await setup({ REDIS_DOWN_POLICY: 'insurance', CIRCUIT_POINTS: '2' });
    server.proc.kill('SIGSTOP');
    const results = await concurrently(3, () => call(app.url, '/tools/circuit-population-analysis'));
    assert.deepEqual(statuses(results).sort(), [200, 200, 429]);
    for (const r of results) assert.ok(r.ms < 1000, `answered in ${Math.round(r.ms)} ms`);
  });
});
