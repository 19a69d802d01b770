// The operator dashboard end to end, in headless Chromium (playwright-core driving Debian's
// /usr/bin/chromium): the dashboard built from its sources, served by the real gateway (auth on,
// dev HS256 tokens), the real worker on python_q and echo_q, real NATS, Redis and SQLite. Every test
// saves a screenshot under test-artifacts/dashboard/; UPDATE_SCREENSHOTS=1 also refreshes
// docs/images/dashboard.png (the queues page) for the README.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { connectStorage, createLogger } from '@neuroagent/platform';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { startTestS3, type TestS3 } from '@neuroagent/platform/testing-s3';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { buildUi } from '../scripts/lib/ui-build.ts';
import { signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { ROOT, type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = join(ROOT, 'test-artifacts', 'dashboard');
const DOCS_SCREENSHOT = join(ROOT, 'docs', 'images', 'dashboard.png');
const SECRET = randomBytes(32).toString('base64url');
const BUCKET = 'dashboard-test';
/** Long enough for a worker that builds its Pyodide snapshot on first start. */
const WORKER_BOOT_MS = 240_000;
const UI_MS = 20_000;

// --------------------------------------------------------------------------------------------
// Helpers

/** A loopback port with nothing listening on it yet: connections are refused until the proxy opens it. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Forwarder {
  url: string;
  /** Cuts every open connection, as a network failure would; new ones are forwarded again. */
  drop(): void;
  close(): Promise<void>;
}

/** A TCP forwarder from `port` (0: any) on loopback to `target`. */
async function forward(port: number, target: string): Promise<Forwarder> {
  const { hostname, port: targetPort } = new URL(target);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(targetPort), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const drop = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    drop,
    close: () =>
      new Promise<void>((resolve) => {
        drop();
        server.close(() => resolve());
      }),
  };
}

async function shot(page: Page, t: TestContext, name: string): Promise<void> {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  t.diagnostic(`screenshot: ${path}`);
}

/** The element's text once it equals `text` (polls the DOM; fails with what it saw instead). */
async function textBecomes(page: Page, selector: string, text: string, timeoutMs = UI_MS): Promise<void> {
  let seen: string | null = null;
  try {
    await waitFor(
      async () => {
        const loc = page.locator(selector);
        seen = (await loc.count()) > 0 ? ((await loc.first().textContent()) ?? '').trim() : null;
        return seen === text;
      },
      timeoutMs,
      `${selector} to read "${text}"`,
      100,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (last seen: ${JSON.stringify(seen)})`, { cause: err });
  }
}

const rowOf = (id: string) => `[data-testid="task-row"][data-task-id="${id}"]`;
const queueRow = (queue: string) => `[data-testid="queue-row"][data-queue="${queue}"]`;

// --------------------------------------------------------------------------------------------

describe('the dashboard in a browser', () => {
  const ns = testNamespace('dashboard_ui');
  const log = createLogger('dashboard-test', 'silent');
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let browser: Browser;
  let uiDir = '';
  let s3Port = 0;
  let s3: TestS3 | undefined;
  let s3Proxy: Forwarder | undefined;
  /** What the browser talks to: the gateway behind a forwarder, so a test can cut the connection. */
  let front: Forwarder;
  let ui = '';
  const tokens = { ops: '', alice: '', bob: '' };
  const contexts: BrowserContext[] = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    // The dashboard as its sources are now, in a folder of this test's own.
    uiDir = await mkdtemp(join(tmpdir(), 'dashboard-ui-'));
    await buildUi({ outDir: uiDir, logLevel: 'error' });

    clients = await testClients(ns);
    s3Port = await freePort();
    worker = await startWorker(
      workerEnv(ns, {
        TASKS_QUEUES: 'python_q,echo_q',
        TASKS_PYTHON__THREADS: '1',
        // One delivery: a task whose /output upload fails is dead-lettered (max_deliveries) at once.
        TASKS_NATS__MAX_DELIVER: '1',
        // Short pulls: none issued before a pause is still waiting for a message after it.
        TASKS_NATS__FETCH_EXPIRES_MS: '1000',
        // The S3 endpoint refuses connections until the re-drive test opens it.
        TASKS_STORAGE__ENABLED: 'true',
        TASKS_STORAGE__ENDPOINT_URL: `http://127.0.0.1:${s3Port}`,
        TASKS_STORAGE__FORCE_PATH_STYLE: 'true',
        TASKS_STORAGE__REGION: 'us-east-1',
        TASKS_STORAGE__ACCESS_KEY: 'S3RVER',
        TASKS_STORAGE__SECRET_KEY: 'S3RVER',
        TASKS_STORAGE__BUCKET: BUCKET,
        TASKS_STORAGE__CHECKSUM_WHEN_REQUIRED: 'true',
        TASKS_STORAGE__REQUEST_TIMEOUT_MS: '2000',
      }),
      WORKER_BOOT_MS,
    );
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        NEUROAGENT_UI__DIR: uiDir,
      }),
    });
    // The admin claim at its default (NEUROAGENT_AUTH__ADMIN_CLAIM=roles, ADMIN_ROLE=admin).
    tokens.ops = await signDevToken({
      secret: SECRET,
      sub: 'ops',
      expiresInS: 3600,
      claims: { roles: ['admin'] },
    });
    tokens.alice = await signDevToken({ secret: SECRET, sub: 'alice', expiresInS: 3600 });
    tokens.bob = await signDevToken({ secret: SECRET, sub: 'bob', expiresInS: 3600 });
    front = await forward(0, gateway.url);
    ui = `${front.url}/ui/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await front?.close();
    await gateway?.stop();
    await worker?.stop();
    await s3Proxy?.close();
    await s3?.stop();
    await clients?.close();
    if (uiDir) await rm(uiDir, { recursive: true, force: true });
  });

  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gateway.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const submit = async (token: string, task: string, input: unknown): Promise<string> => {
    const res = await call(token, 'POST', '/tasks', { task, input });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return String(res.body.task_id);
  };
  const statusOf = async (token: string, id: string) =>
    String((await call(token, 'GET', `/tasks/${id}`)).body.status);

  /** A fresh browser profile (nothing in sessionStorage), every request and CSP report recorded. */
  async function openPage(): Promise<{ page: Page; requests: string[]; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`csp: ${m.text()}`);
    });
    return { page, requests, problems };
  }

  async function login(page: Page, token: string, user: string): Promise<void> {
    await page.goto(ui);
    await page.locator('[data-testid="login-token"]').fill(token);
    await page.locator('[data-testid="login-submit"]').click();
    await page.locator('[data-testid="whoami"]').waitFor({ timeout: UI_MS });
    assert.match((await page.locator('[data-testid="whoami"]').textContent()) ?? '', new RegExp(`^${user}`));
  }

  /** Sets a flag in the page: still set later means the page was never reloaded in between. */
  const markPage = (page: Page) =>
    page.evaluate(() => {
      (globalThis as unknown as { __kept: boolean }).__kept = true;
    });
  const pageKept = (page: Page) =>
    page.evaluate(() => (globalThis as unknown as { __kept?: boolean }).__kept === true);

  it('loads offline from the gateway under its CSP and shows a refused token’s error code', async (t) => {
    const { page, requests, problems } = await openPage();
    try {
      const res = await page.goto(ui);
      assert.equal(res?.status(), 200);
      assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'self'/);
      await page.locator('[data-testid="login"]').waitFor({ timeout: UI_MS });
      const forged = await signDevToken({
        secret: randomBytes(32).toString('base64url'),
        sub: 'mallory',
        expiresInS: 60,
      });
      await page.locator('[data-testid="login-token"]').fill(forged);
      await page.locator('[data-testid="login-submit"]').click();
      await textBecomes(page, '[data-testid="api-error-code"]', 'invalid_token');
      assert.equal(await page.locator('[data-testid="whoami"]').count(), 0, 'not signed in');
      assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
      await shot(page, t, 'login-refused');
      const origin = new URL(front.url).origin;
      assert.deepEqual(
        requests.filter((u) => new URL(u).origin !== origin),
        [],
        'every request stays on the gateway',
      );
      assert.ok(
        requests.some((u) => /\/ui\/assets\/index-[\w-]+\.js$/.test(u)),
        'the bundle came from /ui/assets',
      );
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'login-refused.failed');
      throw err;
    }
  });

  it('shows a normal user their own tasks, finishing live, and never another user’s', async (t) => {
    const { page, problems } = await openPage();
    try {
      const alices = await submit(tokens.alice, 'echo', { payload: 'alice-secret' });
      const earlier = await submit(tokens.bob, 'echo', { payload: 'bob-1' });
      await login(page, tokens.bob, 'bob');
      assert.equal(await page.locator('[data-testid="whoami"]').getAttribute('data-admin'), 'false');
      // No operator pages for a normal user, and the one typed in by hand says so.
      for (const p of ['queues', 'dead-letters', 'audit']) {
        assert.equal(await page.locator(`[data-testid="nav-${p}"]`).count(), 0, `nav-${p}`);
      }
      await page.locator(rowOf(earlier)).waitFor({ timeout: UI_MS });
      await markPage(page);
      const live = await submit(tokens.bob, 'echo', { payload: 'bob-2', delay_ms: 3000 });
      await page.locator(rowOf(live)).waitFor({ timeout: UI_MS });
      const first = (await page.locator(`${rowOf(live)} [data-testid="task-status"]`).textContent())?.trim();
      assert.ok(first === 'pending' || first === 'running', `first seen as ${first}`);
      await textBecomes(page, `${rowOf(live)} [data-testid="task-status"]`, 'succeeded');
      assert.ok(await pageKept(page), 'the status changed without a reload');
      await waitFor(
        async () => (await statusOf(tokens.alice, alices)) === 'succeeded',
        UI_MS,
        'alice’s task',
      );
      assert.equal(await page.locator(rowOf(alices)).count(), 0, 'alice’s task is not listed for bob');
      assert.ok(!(await page.content()).includes(alices), 'alice’s task id appears nowhere in the page');
      await shot(page, t, 'user-own-tasks');

      // Cursor paging: one task a page, "More" brings the next, and disappears on the last page.
      await page.goto(`${ui}#/tasks?limit=1`);
      const rows = page.locator('[data-testid="task-row"]');
      await waitFor(async () => (await rows.count()) === 1, UI_MS, 'a page of one task');
      await page.locator(rowOf(live)).waitFor({ timeout: UI_MS });
      await page.locator('[data-testid="tasks-more"]').click();
      await page.locator(rowOf(earlier)).waitFor({ timeout: UI_MS });
      assert.equal(await rows.count(), 2);
      await waitFor(
        async () => (await page.locator('[data-testid="tasks-more"]').count()) === 0,
        UI_MS,
        'the last page',
      );

      // Opening alice's task by its URL gets the API's refusal, visibly.
      await page.goto(`${ui}#/tasks/${alices}`);
      await textBecomes(page, '[data-testid="api-error-code"]', 'task_not_found');
      assert.ok(!(await page.content()).includes('alice-secret'));
      await page.goto(`${ui}#/queues`);
      await page.locator('[data-testid="forbidden"]').waitFor({ timeout: UI_MS });

      // The own task's detail: its record and timeline.
      await page.goto(`${ui}#/tasks/${live}`);
      await textBecomes(page, '[data-testid="detail-status"]', 'succeeded');
      await page
        .locator('[data-testid="timeline-event"][data-event-type="done"]')
        .waitFor({ timeout: UI_MS });
      assert.match((await page.locator('[data-testid="detail-result"]').textContent()) ?? '', /bob-2/);
      assert.equal(await page.locator('[data-testid="detail-input"]').count(), 0, 'the input is for admins');
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'user-own-tasks.failed');
      throw err;
    }
  });

  it('follows a task’s events across a dropped connection, resuming with Last-Event-ID', async (t) => {
    const { page, problems } = await openPage();
    const eventRequests: { lastEventId: string | undefined }[] = [];
    page.on('request', (r) => {
      if (/\/tasks\/[^/]+\/events$/.test(new URL(r.url()).pathname)) {
        eventRequests.push({ lastEventId: r.headers()['last-event-id'] });
      }
    });
    try {
      await login(page, tokens.bob, 'bob');
      const id = await submit(tokens.bob, 'echo', { payload: 'slow', delay_ms: 6000 });
      await page.goto(`${ui}#/tasks/${id}`);
      await page
        .locator('[data-testid="timeline-event"][data-event-type="started"]')
        .waitFor({ timeout: UI_MS });
      const startedId = await page
        .locator('[data-testid="timeline-event"][data-event-type="started"]')
        .getAttribute('data-event-id');
      assert.equal(
        eventRequests[0]?.lastEventId,
        undefined,
        'the first connection starts from the beginning',
      );
      await textBecomes(page, '[data-testid="stream-state"]', 'live');
      // The connection breaks mid-stream, before the task ends.
      front.drop();
      await textBecomes(page, '[data-testid="detail-status"]', 'succeeded');
      assert.ok(
        eventRequests.slice(1).some((r) => r.lastEventId === startedId),
        `a reconnect sent Last-Event-ID ${startedId}: ${JSON.stringify(eventRequests)}`,
      );
      const types = await page
        .locator('[data-testid="timeline-event"]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-event-type')));
      assert.deepEqual(types, ['started', 'done'], 'every event once, none lost or repeated');
      await shot(page, t, 'sse-resume');
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'sse-resume.failed');
      throw err;
    }
  });

  it('shows an admin a submitted task appearing and finishing live', async (t) => {
    const { page, problems } = await openPage();
    try {
      await login(page, tokens.ops, 'ops');
      assert.equal(await page.locator('[data-testid="whoami"]').getAttribute('data-admin'), 'true');
      await page.locator('[data-testid="queues-page"]').waitFor({ timeout: UI_MS });
      await page.locator('[data-testid="nav-tasks"]').click();
      await page.locator('[data-testid="tasks-table"]').waitFor({ timeout: UI_MS });
      await markPage(page);
      const id = await submit(tokens.alice, 'echo', { payload: 'watched', delay_ms: 2500 });
      await page.locator(rowOf(id)).waitFor({ timeout: UI_MS });
      assert.equal(
        (await page.locator(`${rowOf(id)} [data-testid="task-owner"]`).textContent())?.trim(),
        'alice',
      );
      const first = (await page.locator(`${rowOf(id)} [data-testid="task-status"]`).textContent())?.trim();
      assert.ok(first === 'pending' || first === 'running', `first seen as ${first}`);
      await textBecomes(page, `${rowOf(id)} [data-testid="task-status"]`, 'succeeded');
      assert.ok(await pageKept(page), 'the status changed without a reload');
      await shot(page, t, 'admin-task-live');

      // The filters narrow the list: by owner, and a status that excludes it.
      await page.locator('[data-testid="filter-owner"]').fill('alice');
      await page.locator('[data-testid="filter-status"]').selectOption('succeeded');
      await page.locator('[data-testid="filter-apply"]').click();
      await waitFor(
        async () => {
          const owners = await page.locator('[data-testid="task-owner"]').allTextContents();
          const ours = (await page.locator(rowOf(id)).count()) === 1;
          return ours && owners.length > 0 && owners.every((o) => o.trim() === 'alice');
        },
        UI_MS,
        'only alice’s tasks, this one among them',
      );
      assert.equal(new URL(page.url()).hash, '#/tasks?status=succeeded&owner=alice');
      await page.locator('[data-testid="filter-status"]').selectOption('failed');
      await page.locator('[data-testid="filter-apply"]').click();
      await waitFor(
        async () => (await page.locator(rowOf(id)).count()) === 0,
        UI_MS,
        'the filter to drop it',
      );
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'admin-task-live.failed');
      throw err;
    }
  });

  let deadTaskId = '';

  it('opens a failed task and shows its error code and message', async (t) => {
    const { page, problems } = await openPage();
    try {
      // Its /output file cannot be stored (S3 refuses connections): an infrastructure error on the
      // last (only) delivery, so the worker dead-letters it and records it failed, max_deliveries.
      deadTaskId = await submit(tokens.alice, 'run_python', {
        python_script: 'open("/output/report.txt", "w").write("quarterly")\n"written"',
      });
      await waitFor(
        async () => (await statusOf(tokens.alice, deadTaskId)) === 'failed',
        120_000,
        'the task to fail',
      );
      await login(page, tokens.ops, 'ops');
      await page.goto(`${ui}#/tasks?error_code=max_deliveries`);
      await page.locator(rowOf(deadTaskId)).waitFor({ timeout: UI_MS });
      assert.equal(
        (await page.locator(`${rowOf(deadTaskId)} [data-testid="task-error-code"]`).textContent())?.trim(),
        'max_deliveries',
      );
      await page.locator(`${rowOf(deadTaskId)} [data-testid="task-link"]`).click();
      await textBecomes(page, '[data-testid="detail-status"]', 'failed');
      await textBecomes(page, '[data-testid="detail-error-code"]', 'max_deliveries');
      assert.match(
        (await page.locator('[data-testid="detail-error-message"]').textContent()) ?? '',
        /storage/i,
      );
      assert.match((await page.locator('[data-testid="detail-input"]').textContent()) ?? '', /quarterly/);
      await page
        .locator('[data-testid="timeline-event"][data-event-type="error"]')
        .waitFor({ timeout: UI_MS });
      await shot(page, t, 'admin-failed-task');
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'admin-failed-task.failed');
      throw err;
    }
  });

  it('re-drives a dead letter once the store is back, and the new task succeeds', async (t) => {
    assert.ok(deadTaskId, 'the previous test made the dead letter');
    const { page, problems } = await openPage();
    try {
      // The store comes back at the address the worker uses.
      s3 = await startTestS3();
      (await connectStorage(s3.settings({ bucket: BUCKET }), log)).close();
      s3Proxy = await forward(s3Port, s3.endpoint);

      await login(page, tokens.ops, 'ops');
      await page.locator('[data-testid="nav-dead-letters"]').click();
      const row = `[data-testid="dlq-row"][data-task-id="${deadTaskId}"]`;
      await page.locator(row).waitFor({ timeout: UI_MS });
      assert.equal(
        (await page.locator(`${row} [data-testid="dlq-reason"]`).textContent())?.trim(),
        'max_deliveries',
      );
      await shot(page, t, 'admin-dead-letters');
      await page.locator(`${row} [data-testid="dlq-redrive"]`).click();
      const link = page.locator('[data-testid="dlq-redriven-link"]');
      await link.waitFor({ timeout: UI_MS });
      const newId = (await link.getAttribute('data-task-id')) ?? '';
      assert.ok(newId && newId !== deadTaskId, `a new task id: ${newId}`);
      await waitFor(async () => (await page.locator(row).count()) === 0, UI_MS, 'the dead letter to go');
      await link.click();
      await textBecomes(page, '[data-testid="detail-status"]', 'succeeded', 120_000);
      assert.match((await page.locator('[data-testid="detail-result"]').textContent()) ?? '', /written/);
      // The re-drive keeps the owner: alice sees it as hers.
      assert.equal(await statusOf(tokens.alice, newId), 'succeeded');
      await shot(page, t, 'admin-redriven');
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'admin-redrive.failed');
      throw err;
    }
  });

  it('pauses a queue: a submitted task stays pending until resume, then succeeds; both are audited', async (t) => {
    const { page, problems } = await openPage();
    let resumed = false;
    try {
      await login(page, tokens.ops, 'ops');
      await page.locator(queueRow('echo_q')).waitFor({ timeout: UI_MS });
      await page.locator('[data-testid="pause-reason"]').fill('browser test');
      await page.locator(`${queueRow('echo_q')} [data-testid="queue-pause"]`).click();
      await textBecomes(page, `${queueRow('echo_q')} [data-testid="queue-state"]`, 'paused');
      // Workers stop pulling within a second.
      await new Promise((r) => setTimeout(r, 1500));
      const id = await submit(tokens.alice, 'echo', { payload: 'held' });
      await textBecomes(page, `${queueRow('echo_q')} [data-testid="queue-pending"]`, '1');
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(await statusOf(tokens.alice, id), 'pending', 'nothing ran it while paused');
      await page.screenshot({ path: join(ARTIFACTS, 'admin-queue-paused.png'), fullPage: true });
      t.diagnostic(`screenshot: ${join(ARTIFACTS, 'admin-queue-paused.png')}`);
      if (process.env.UPDATE_SCREENSHOTS === '1') {
        await mkdir(join(ROOT, 'docs', 'images'), { recursive: true });
        await page.screenshot({ path: DOCS_SCREENSHOT, fullPage: true });
        t.diagnostic(`screenshot: ${DOCS_SCREENSHOT}`);
      }

      await page.goto(`${ui}#/tasks/${id}`);
      await textBecomes(page, '[data-testid="detail-status"]', 'pending');
      await page.goto(`${ui}#/queues`);
      await page.locator(`${queueRow('echo_q')} [data-testid="queue-resume"]`).click();
      resumed = true;
      await textBecomes(page, `${queueRow('echo_q')} [data-testid="queue-state"]`, 'active');
      await page.goto(`${ui}#/tasks/${id}`);
      await textBecomes(page, '[data-testid="detail-status"]', 'succeeded');
      await page
        .locator('[data-testid="timeline-event"][data-event-type="done"]')
        .waitFor({ timeout: UI_MS });

      await page.locator('[data-testid="nav-audit"]').click();
      for (const action of ['queue.pause', 'queue.resume', 'dlq.redrive']) {
        const entry = page.locator(`[data-testid="audit-row"][data-action="${action}"]`).first();
        await entry.waitFor({ timeout: UI_MS });
        assert.equal((await entry.locator('[data-testid="audit-row-actor"]').textContent())?.trim(), 'ops');
      }
      assert.equal(
        await page
          .locator('[data-testid="audit-row"][data-action="queue.pause"]')
          .first()
          .getAttribute('data-target'),
        'echo_q',
      );
      await shot(page, t, 'admin-audit');
      assert.deepEqual(problems, []);
    } catch (err) {
      await shot(page, t, 'admin-pause.failed');
      throw err;
    } finally {
      if (!resumed) await call(tokens.ops, 'POST', '/admin/queues/echo_q/resume').catch(() => {});
    }
  });
});
