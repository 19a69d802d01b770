import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { TaskFailedError } from '@neuroagent/platform';
import {
  circuitCacheKey,
  type DownloadOptions,
  downloadToFile,
  probeUrl,
  redactUrl,
  urlIdentity,
} from '../src/circuit/download.ts';
import { blockedAddressReason } from '../src/circuit/ssrf-guard.ts';

const BODY = randomBytes(200_000);
const SECRET = 'X-Amz-Signature=deadbeefsecret';

const base: DownloadOptions = {
  maxBytes: 1_000_000,
  connectTimeoutMs: 2000,
  readTimeoutMs: 2000,
  maxRedirects: 3,
  allowPrivate: true,
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const routes: Record<string, Handler> = {
  '/circuit.gz': (_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length, etag: '"v1"' });
    res.end(BODY);
  },
  '/ranged': (req, res) => {
    if (req.headers.range === 'bytes=0-0') {
      res.writeHead(206, { 'content-range': `bytes 0-0/${BODY.length}`, 'content-length': 1, etag: '"v1"' });
      res.end(BODY.subarray(0, 1));
    } else {
      res.writeHead(200, { 'content-length': BODY.length, etag: '"v1"' });
      res.end(BODY);
    }
  },
  '/slow-body': (_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length });
    res.write(BODY.subarray(0, 1000)); // then silence
  },
  '/no-headers': () => {}, // accepts the request, never answers
  '/big-declared': (_req, res) => {
    res.writeHead(200, { 'content-length': 5000 });
    res.end(Buffer.alloc(5000));
  },
  '/big-chunked': (_req, res) => {
    res.writeHead(200); // no Content-Length: chunked
    let sent = 0;
    const timer = setInterval(() => {
      if (res.destroyed || sent > 50_000) {
        clearInterval(timer);
        res.end();
        return;
      }
      res.write(Buffer.alloc(1000));
      sent += 1000;
    }, 1);
  },
  '/truncated': (_req, res) => {
    res.writeHead(200, { 'content-length': 5000 });
    res.write(Buffer.alloc(1000), () => res.socket?.destroy());
  },
  '/loop': (_req, res) => {
    res.writeHead(302, { location: '/loop' });
    res.end();
  },
  '/dir/start': (_req, res) => {
    res.writeHead(307, { location: '../circuit.gz?sig=1' });
    res.end();
  },
  '/missing': (_req, res) => {
    res.writeHead(404);
    res.end('not here');
  },
};

let server: ReturnType<typeof createServer>;
let origin = '';
let connections = 0;
let dir = '';

before(async () => {
  server = createServer((req, res) => {
    const route = routes[new URL(req.url ?? '/', 'http://x').pathname];
    if (route) route(req, res);
    else {
      res.writeHead(500);
      res.end();
    }
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = await mkdtemp(join(tmpdir(), 'circuit-download-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Asserts a TaskFailedError with `code`, whose message matches `pattern` and never shows a query. */
async function rejectsWith(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TaskFailedError, `expected TaskFailedError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /deadbeefsecret|\?/);
    return true;
  });
}

/** No temp file and no destination file may remain after a failure. */
async function assertDirEmpty(): Promise<void> {
  assert.deepEqual(await readdir(dir), []);
}

const dest = () => join(dir, 'circuit.gz');

describe('downloadToFile', () => {
  it('streams a good file to disk and returns its size, ETag and redacted final URL', async () => {
    const r = await downloadToFile(`${origin}/circuit.gz?${SECRET}`, dest(), base);
    assert.equal(r.bytes, BODY.length);
    assert.equal(r.contentLength, BODY.length);
    assert.equal(r.etag, '"v1"');
    assert.equal(r.finalUrl, `${origin}/circuit.gz`);
    assert.ok((await readFile(dest())).equals(BODY));
    assert.deepEqual(await readdir(dir), ['circuit.gz']);
  });

  it('fails with a read timeout when the server sends headers and then goes silent', async () => {
    const started = Date.now();
    await rejectsWith(
      downloadToFile(`${origin}/slow-body?${SECRET}`, dest(), { ...base, readTimeoutMs: 200 }),
      'download_failed',
      /no data from .* for 200 ms \(read timeout\)/,
    );
    assert.ok(Date.now() - started < 1500);
    await assertDirEmpty();
  });

  it('fails with a read timeout when the server accepts but never answers headers', async () => {
    await rejectsWith(
      downloadToFile(`${origin}/no-headers`, dest(), { ...base, readTimeoutMs: 200 }),
      'download_failed',
      /read timeout/,
    );
    await assertDirEmpty();
  });

  it('refuses a Content-Length over the limit with too_large before reading the body', async () => {
    await rejectsWith(
      downloadToFile(`${origin}/big-declared?${SECRET}`, dest(), { ...base, maxBytes: 4000 }),
      'too_large',
      /Content-Length is 5000/,
    );
    await assertDirEmpty();
  });

  it('aborts a chunked body without Content-Length once it passes the limit', async () => {
    await rejectsWith(
      downloadToFile(`${origin}/big-chunked`, dest(), { ...base, maxBytes: 10_000 }),
      'too_large',
      /body passed 10000 bytes/,
    );
    await assertDirEmpty();
  });

  it('fails when the connection drops before Content-Length bytes arrived', async () => {
    await rejectsWith(downloadToFile(`${origin}/truncated`, dest(), base), 'download_failed');
    await assertDirEmpty();
  });

  it('stops a redirect loop after maxRedirects', async () => {
    await rejectsWith(
      downloadToFile(`${origin}/loop?${SECRET}`, dest(), base),
      'download_failed',
      /too many redirects \(more than 3\)/,
    );
    await assertDirEmpty();
  });

  it('follows a relative Location against the current URL', async () => {
    const r = await downloadToFile(`${origin}/dir/start?${SECRET}`, dest(), base);
    assert.equal(r.bytes, BODY.length);
    assert.equal(r.finalUrl, `${origin}/circuit.gz`);
    assert.ok((await readFile(dest())).equals(BODY));
  });

  it('reports a 404 as download_failed naming the status, without the query string', async () => {
    await rejectsWith(
      downloadToFile(`${origin}/missing?${SECRET}`, dest(), base),
      'download_failed',
      /answered HTTP 404 Not Found/,
    );
    await assertDirEmpty();
  });

  it('connects to a hostname through the pinned lookup', async () => {
    const port = new URL(origin).port;
    const r = await downloadToFile(`http://localhost:${port}/circuit.gz`, dest(), base);
    assert.equal(r.bytes, BODY.length);
  });

  it('fails with a connect timeout when the TLS handshake never completes', async () => {
    // A TCP server that accepts and stays silent: the https connect (TCP + TLS) never finishes.
    const held: Socket[] = [];
    const silent = createNetServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      await rejectsWith(
        downloadToFile(`https://127.0.0.1:${port}/c.gz?${SECRET}`, dest(), {
          ...base,
          connectTimeoutMs: 200,
          readTimeoutMs: 5000,
        }),
        'download_failed',
        /could not connect to https:\/\/127\.0\.0\.1:\d+\/c\.gz within 200 ms/,
      );
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
    await assertDirEmpty();
  });

  it('reports a refused connection as download_failed', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await rejectsWith(
      downloadToFile(`http://127.0.0.1:${port}/x`, dest(), base),
      'download_failed',
      /ECONNREFUSED/,
    );
    await assertDirEmpty();
  });

  it('reports an unknown host as download_failed', async () => {
    await rejectsWith(
      downloadToFile('http://no-such-host.invalid/x', dest(), base),
      'download_failed',
      /cannot resolve http:\/\/no-such-host\.invalid\/x/,
    );
  });

  it('refuses loopback, private and link-local hosts before connecting when allowPrivate is false', async () => {
    const port = new URL(origin).port;
    const before = connections;
    for (const host of [
      '127.0.0.1',
      'localhost',
      '[::1]',
      '10.0.0.1',
      '169.254.169.254',
      '[::ffff:127.0.0.1]',
    ]) {
      await rejectsWith(
        downloadToFile(`http://${host}:${port}/circuit.gz?${SECRET}`, dest(), {
          ...base,
          allowPrivate: false,
        }),
        'download_failed',
        /refusing to download .* is a (loopback|private|link-local) address/,
      );
    }
    // WHATWG URL parsing turns these spellings into 127.0.0.1; they are refused too.
    for (const host of ['2130706433', '0x7f.1']) {
      await rejectsWith(
        downloadToFile(`http://${host}:${port}/`, dest(), { ...base, allowPrivate: false }),
        'download_failed',
        /loopback/,
      );
    }
    assert.equal(connections, before, 'no connection may reach the server');
    await assertDirEmpty();
  });

  it('refuses schemes other than http and https', async () => {
    for (const url of ['ftp://example.com/circuit.gz', 'file:///etc/passwd', 'data:text/plain,hello']) {
      await rejectsWith(downloadToFile(url, dest(), base), 'download_failed', /only http and https/);
    }
    await rejectsWith(downloadToFile('not a url', dest(), base), 'download_failed', /not a valid URL/);
    await assertDirEmpty();
  });

  it('rethrows an AbortError (not a TaskFailedError) when the signal fires mid-body', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('cancelled')), 100);
    await assert.rejects(
      downloadToFile(`${origin}/slow-body`, dest(), { ...base, signal: ac.signal }),
      (err: unknown) =>
        err instanceof Error && err.name === 'AbortError' && !(err instanceof TaskFailedError),
    );
    await assertDirEmpty();
  });

  it('rethrows an AbortError when the signal is already aborted', async () => {
    await assert.rejects(
      downloadToFile(`${origin}/circuit.gz`, dest(), { ...base, signal: AbortSignal.abort() }),
      { name: 'AbortError' },
    );
    await assertDirEmpty();
  });
});

describe('probeUrl', () => {
  it('reads the ETag and the full size from a one-byte range request', async () => {
    const r = await probeUrl(`${origin}/ranged?${SECRET}`, base);
    assert.deepEqual(r, {
      etag: '"v1"',
      lastModified: null,
      size: BODY.length,
      finalUrl: `${origin}/ranged`,
    });
  });

  it('falls back to Content-Length when the server ignores Range', async () => {
    const r = await probeUrl(`${origin}/circuit.gz`, base);
    assert.equal(r.size, BODY.length);
    assert.equal(r.etag, '"v1"');
  });

  it('applies the SSRF guard', async () => {
    await rejectsWith(
      probeUrl(`${origin}/ranged`, { ...base, allowPrivate: false }),
      'download_failed',
      /loopback/,
    );
  });
});

describe('redactUrl', () => {
  it('drops the query string, fragment and userinfo', () => {
    assert.equal(
      redactUrl(`https://user:pw@bucket.s3.example.org/circuits/c.gz?${SECRET}&X-Amz-Credential=k#frag`),
      'https://bucket.s3.example.org/circuits/c.gz',
    );
    assert.equal(redactUrl('not a url?secret=1'), '<invalid url>');
  });
});

describe('circuitCacheKey', () => {
  it('ignores the signature query, and changes with the ETag or, without one, the size', () => {
    const a = circuitCacheKey('https://s3.example.org/b/c.gz?X-Amz-Signature=1', '"e1"', 10);
    const b = circuitCacheKey('https://s3.example.org/b/c.gz?X-Amz-Signature=2#x', '"e1"', 99);
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(a, b);
    assert.notEqual(a, circuitCacheKey('https://s3.example.org/b/c.gz', '"e2"', 10));
    assert.notEqual(a, circuitCacheKey('https://s3.example.org/b/other.gz', '"e1"', 10));
    assert.notEqual(circuitCacheKey('https://h/x', null, 5), circuitCacheKey('https://h/x', null, 6));
    assert.equal(urlIdentity('https://u:p@H.example/x/y?q=1#f'), 'https://h.example/x/y?q=1');
  });

  it('tells apart two objects of equal size behind one path by their query, without an ETag', () => {
    const one = 'https://h/get?key=circuit-1.gz&X-Amz-Signature=aa&X-Amz-Date=1';
    const two = 'https://h/get?key=circuit-2.gz&X-Amz-Signature=aa&X-Amz-Date=1';
    assert.notEqual(circuitCacheKey(one, null, 5), circuitCacheKey(two, null, 5));
    // A fresh signature of the same object is the same object.
    const resigned = 'https://h/get?X-Amz-Date=2&key=circuit-1.gz&X-Amz-Signature=bb';
    assert.equal(circuitCacheKey(one, null, 5), circuitCacheKey(resigned, null, 5));
    // Without an ETag, Last-Modified takes part in the version.
    const lm = (v: string) => circuitCacheKey(one, null, 5, v);
    assert.notEqual(lm('Tue, 01 Dec 2026 10:00:00 GMT'), lm('Wed, 02 Dec 2026 10:00:00 GMT'));
    for (const sig of [
      'Signature=x&Expires=1&AWSAccessKeyId=k',
      'sig=x&se=1&sp=r&sv=1&sr=b',
      'X-Goog-Signature=x',
    ]) {
      assert.equal(urlIdentity(`https://h/o.gz?v=1&${sig}`), 'https://h/o.gz?v=1');
    }
  });
});

describe('blockedAddressReason', () => {
  it('refuses every non-public range, including IPv4 embedded in IPv6', () => {
    const blocked: [string, RegExp][] = [
      ['127.0.0.1', /loopback/],
      ['127.255.0.9', /loopback/],
      ['10.1.2.3', /private/],
      ['172.16.0.1', /private/],
      ['172.31.255.255', /private/],
      ['192.168.1.1', /private/],
      ['169.254.169.254', /link-local/],
      ['100.64.0.1', /carrier-grade/],
      ['100.127.255.255', /carrier-grade/],
      ['0.0.0.0', /unspecified/],
      ['0.1.2.3', /unspecified/],
      ['255.255.255.255', /broadcast/],
      ['224.0.0.1', /multicast/],
      ['::', /unspecified/],
      ['::1', /loopback/],
      ['fe80::1', /link-local/],
      ['fe80::1%eth0', /link-local/],
      ['fc00::1', /unique local/],
      ['fd12:3456::1', /unique local/],
      ['ff02::1', /multicast/],
      ['::ffff:127.0.0.1', /loopback/],
      ['::ffff:7f00:1', /loopback/],
      ['::ffff:10.0.0.1', /private/],
      ['::ffff:a9fe:a9fe', /link-local/],
      ['64:ff9b::10.0.0.1', /private/],
      ['2002:c0a8:0101::1', /private/],
    ];
    for (const [ip, reason] of blocked) assert.match(blockedAddressReason(ip) ?? 'allowed', reason, ip);
  });

  it('allows public addresses', () => {
    for (const ip of [
      '8.8.8.8',
      '172.32.0.1',
      '100.128.0.1',
      '1.1.1.1',
      '2606:4700::1111',
      '::ffff:8.8.8.8',
    ]) {
      assert.equal(blockedAddressReason(ip), null, ip);
    }
  });
});
