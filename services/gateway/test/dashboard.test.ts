// GET/HEAD /ui and /ui/*: the dashboard's static files on a real gateway (real NATS and Redis, auth
// on), from a fixture folder: content types, caching, CSP, the SPA fallback, 503 when not built,
// path traversal in every encoding, and that making /ui public opened nothing else.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testNamespace } from '@neuroagent/platform/testing';
import { signDevToken } from '../src/auth/dev-token.ts';
import { DASHBOARD_CSP, dashboardRelativePath, resolveUiDir } from '../src/routes/dashboard.ts';
import { cleanupTestNamespace, startTestGateway, type TestGateway } from './support.ts';

const SECRET = randomBytes(32).toString('base64url');
const INDEX = '<!doctype html><title>fixture dashboard</title><div id="app"></div>';
const ASSET = 'assets/index-AbC123xY.js';
const OUTSIDE = 'TOP-SECRET-OUTSIDE-THE-DASHBOARD';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request with the path sent exactly as given: fetch() would normalise ../ and encodings away. */
function raw(url: string, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Raw> {
  const { hostname, port } = new URL(url);
  return new Promise((resolvePromise, reject) => {
    const req = request({ hostname, port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboardRelativePath(requestPath)', () => {
  it('maps /ui, /ui/ and files under it, and refuses anything that could leave the folder', () => {
    assert.equal(dashboardRelativePath('/ui'), '');
    assert.equal(dashboardRelativePath('/ui/'), '');
    assert.equal(dashboardRelativePath('/ui/assets/a-b.js'), 'assets/a-b.js');
    assert.equal(dashboardRelativePath('/ui/tasks/'), 'tasks');
    assert.equal(dashboardRelativePath('/ui/a%20b.txt'), 'a b.txt');
    for (const bad of [
      '/ui/..',
      '/ui/../x',
      '/ui/%2e%2e/x',
      '/ui/%2E%2E%2Fx',
      '/ui/a/./b',
      '/ui//etc/passwd',
      '/ui/%2fetc%2fpasswd',
      '/ui/..%5cx',
      '/ui/a\\b',
      '/ui/index.html%00.js',
      '/ui/%E0%A4%A',
      '/uix',
      '/UI/x',
    ]) {
      assert.equal(dashboardRelativePath(bad), null, bad);
    }
  });

  it('resolves a relative NEUROAGENT_UI__DIR from the repository root, not the working directory', () => {
    const root = resolve(import.meta.dirname, '../../..');
    assert.equal(resolveUiDir('services/dashboard/dist'), join(root, 'services/dashboard/dist'));
    assert.equal(resolveUiDir('/srv/ui'), '/srv/ui');
  });
});

describe('GET /ui on the gateway', () => {
  const ns = testNamespace('dashboard');
  let gw: TestGateway;
  let tmp = '';
  let uiDir = '';
  let token = '';

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'dashboard-route-'));
    uiDir = join(tmp, 'ui');
    await mkdir(join(uiDir, 'assets'), { recursive: true });
    await writeFile(join(uiDir, 'index.html'), INDEX);
    await writeFile(join(uiDir, ASSET), 'console.log("app")');
    await writeFile(join(uiDir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(join(uiDir, 'blob.bin'), 'data');
    await writeFile(join(tmp, 'secret.txt'), OUTSIDE);
    await symlink(join(tmp, 'secret.txt'), join(uiDir, 'leak.txt'));
    gw = await startTestGateway(ns, {
      NEUROAGENT_AUTH__DISABLED: 'false',
      NEUROAGENT_AUTH__JWT_SECRET: SECRET,
      NEUROAGENT_UI__DIR: uiDir,
    });
    token = await signDevToken({ secret: SECRET, sub: 'alice', expiresInS: 600 });
  });
  after(async () => {
    await gw?.close();
    await cleanupTestNamespace(ns);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('serves index.html without a token, under a strict CSP, revalidated on every load', async () => {
    for (const path of ['/ui', '/ui/', '/ui/index.html']) {
      const res = await raw(gw.url, path);
      assert.equal(res.status, 200, path);
      assert.equal(res.body, INDEX, path);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8', path);
      assert.equal(res.headers['cache-control'], 'no-cache', path);
      assert.equal(res.headers['content-security-policy'], DASHBOARD_CSP, path);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', path);
    }
    assert.match(DASHBOARD_CSP, /(^|; )default-src 'self'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )connect-src 'self'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )script-src 'self'(;|$)/);
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval|https?:|data:|\*/);
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await raw(gw.url, '/ui/', 'HEAD');
    assert.equal(res.status, 200);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(INDEX)));
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  });

  it('serves hashed assets as immutable and other files as no-cache, each with its type', async () => {
    const js = await raw(gw.url, `/ui/${ASSET}`);
    assert.equal(js.status, 200);
    assert.equal(js.body, 'console.log("app")');
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    const svg = await raw(gw.url, '/ui/favicon.svg');
    assert.equal(svg.headers['content-type'], 'image/svg+xml');
    assert.equal(svg.headers['cache-control'], 'no-cache');
    const bin = await raw(gw.url, '/ui/blob.bin');
    assert.equal(bin.headers['content-type'], 'application/octet-stream');
    assert.equal(bin.headers['x-content-type-options'], 'nosniff');
  });

  it('answers 304 to a revalidation with the current ETag', async () => {
    const first = await raw(gw.url, '/ui/');
    const etag = String(first.headers.etag);
    assert.match(etag, /^W\/"/);
    const again = await raw(gw.url, '/ui/', 'GET', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
  });

  it('falls back to index.html for app paths without an extension; a missing file is a 404', async () => {
    for (const path of ['/ui/tasks', '/ui/tasks/0193abcd', '/ui/queues/', '/ui/assets']) {
      const res = await raw(gw.url, path);
      assert.equal(res.status, 200, path);
      assert.equal(res.body, INDEX, path);
    }
    const missing = await raw(gw.url, '/ui/assets/nope-12345678.js');
    assert.equal(missing.status, 404);
    assert.equal((JSON.parse(missing.body) as { code: string }).code, 'not_found');
  });

  it('never serves a file outside the folder, whatever the encoding', async () => {
    const attacks = [
      '/ui/../secret.txt',
      '/ui/assets/../../secret.txt',
      '/ui/%2e%2e/secret.txt',
      '/ui/%2E%2E/secret.txt',
      '/ui/..%2fsecret.txt',
      '/ui/%2e%2e%2fsecret.txt',
      '/ui/assets/..%2f..%2fsecret.txt',
      '/ui/..%5csecret.txt',
      '/ui/..\\secret.txt',
      '/ui/assets\\..\\..\\secret.txt',
      '/ui/%252e%252e/secret.txt',
      '/ui/secret.txt%00',
      '/ui/..%00/secret.txt',
      '/ui/%00',
      `/ui/${'%2e%2e/'.repeat(12)}etc/passwd`,
      '/ui//etc/passwd',
      '/ui/%2fetc%2fpasswd',
      '/ui/%c0%ae%c0%ae/secret.txt',
      '/ui/leak.txt',
    ];
    for (const path of attacks) {
      const res = await raw(gw.url, path);
      assert.ok([400, 404].includes(res.status), `${path}: ${res.status}`);
      assert.ok(!res.body.includes(OUTSIDE), `${path} leaked the file outside the folder`);
      assert.ok(!res.body.includes('root:'), `${path} leaked /etc/passwd`);
    }
    const refused = await raw(gw.url, '/ui/%2e%2e/secret.txt');
    assert.equal((JSON.parse(refused.body) as { code: string }).code, 'invalid_path');
  });

  it('makes only /ui and /ui/* public: every other path still needs a token', async () => {
    for (const path of ['/uix', '/ui-admin', '/uiassets/x.js', '/UI/', '/tasks', '/tasks/../ui/', '/me']) {
      const res = await raw(gw.url, path);
      assert.equal(res.status, 401, `${path} answered ${res.status} without a token`);
    }
    // /ui/ in front of an API path reaches the dashboard's handler, never the API route.
    for (const path of ['/ui/../tasks', '/ui/..%2ftasks', '/ui/%2e%2e/tasks']) {
      const res = await raw(gw.url, path);
      assert.equal(res.status, 400, path);
      assert.doesNotMatch(res.body, /"items"/, path);
    }
    const withToken = await raw(gw.url, '/tasks', 'GET', { authorization: `Bearer ${token}` });
    assert.equal(withToken.status, 200, 'the token in this test is good');
  });

  it('answers 503 dashboard_not_built, naming npm run build:ui, while the folder has no index.html', async () => {
    await rename(join(uiDir, 'index.html'), join(uiDir, 'index.html.off'));
    try {
      for (const path of ['/ui/', `/ui/${ASSET}`, '/ui/tasks']) {
        const res = await raw(gw.url, path);
        assert.equal(res.status, 503, path);
        const body = JSON.parse(res.body) as { code: string; message: string };
        assert.equal(body.code, 'dashboard_not_built');
        assert.match(body.message, /npm run build:ui/);
        assert.ok(res.headers['retry-after'], 'every 503 says when to come back');
      }
    } finally {
      await rename(join(uiDir, 'index.html.off'), join(uiDir, 'index.html'));
    }
    assert.equal((await raw(gw.url, '/ui/')).status, 200);
  });
});
