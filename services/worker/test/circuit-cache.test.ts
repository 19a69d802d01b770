// Tasks that share one circuit download: one task's cancel or deadline must not fail the others.
// A real HTTP server drips a real SONATA archive slowly, so both tasks are waiting on the same
// download when one of them gives up; the shared load is aborted only when nobody waits.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '@neuroagent/platform';
import { type CircuitCache, createCircuitCache } from '../src/circuit/circuit-cache.ts';
import { FIXTURE_POPULATION, packCircuit, writeSonataCircuit } from './sonata-fixture.ts';

const COUNT = 500;
const DRIP_MS = 1500; // how long one full download takes
const limits = { maxRows: 10, timeoutMs: 10_000, maxResultBytes: 1 << 20 };

describe('circuit cache: shared downloads under their own signal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'circuit-cache-'));
  let server: Server;
  let base = '';
  let downloadsStarted = 0;
  let downloadsAborted = 0;
  let cacheN = 0;

  before(async () => {
    await writeSonataCircuit(join(dir, 'src'), { count: COUNT, seed: 3 });
    await packCircuit(join(dir, 'src'), join(dir, 'circuit.gz'));
    const archive = readFileSync(join(dir, 'circuit.gz'));
    server = createServer((req, res) => {
      const etag = `"${new URL(req.url ?? '/', 'http://x').pathname}"`;
      if (req.headers.range) {
        res.writeHead(206, { etag, 'content-range': `bytes 0-0/${archive.length}`, 'content-length': 1 });
        return void res.end(archive.subarray(0, 1));
      }
      downloadsStarted++;
      res.writeHead(200, { etag, 'content-length': archive.length });
      const chunks = 15;
      const size = Math.ceil(archive.length / chunks);
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed) {
          downloadsAborted++;
          clearInterval(timer);
          return;
        }
        res.write(archive.subarray(i * size, (i + 1) * size));
        if (++i === chunks) {
          clearInterval(timer);
          res.end();
        }
      }, DRIP_MS / chunks);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => {
    server?.closeAllConnections();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function cache(): CircuitCache {
    return createCircuitCache({
      dir: join(dir, `cache-${++cacheN}`),
      maxDiskBytes: 1 << 30,
      maxLoaded: 4,
      download: {
        maxBytes: 1 << 30,
        connectTimeoutMs: 5000,
        readTimeoutMs: 5000,
        maxRedirects: 0,
        allowPrivate: true,
      },
      extract: { maxBytes: 1 << 30, maxEntries: 1000 },
      duckdbMemoryMb: 256,
      hdf5: { timeoutMs: 60_000, memoryMb: 1024, maxElements: 10_000_000 },
      log: createLogger('test', 'silent'),
    });
  }

  it('two concurrent questions on one circuit: cancelling one leaves the other to succeed', async () => {
    const c = cache();
    const url = `${base}/a/circuit.gz?X-Amz-Signature=1`;
    const cancelled = new AbortController();
    const started = downloadsStarted;
    const first = c.population(url, FIXTURE_POPULATION, cancelled.signal);
    const second = c.population(url, FIXTURE_POPULATION, new AbortController().signal);
    await sleep(DRIP_MS / 3);
    assert.equal(downloadsStarted - started, 1, 'the two tasks share one download');
    cancelled.abort(new Error('task cancelled'));
    await assert.rejects(first, { name: 'AbortError' });
    const lease = await second;
    try {
      const r = await lease.db.query('SELECT count(*) AS n FROM neurons', limits);
      assert.equal(Number(r.rows[0]?.[0]), COUNT);
      assert.equal(lease.cached, false);
    } finally {
      lease.release();
    }
    c.close();
  });

  it('a task whose deadline passes while it waits fails alone; a later task finds the circuit cached', async () => {
    const c = cache();
    const url = `${base}/b/circuit.gz?X-Amz-Signature=2`;
    const first = c.population(url, FIXTURE_POPULATION, AbortSignal.timeout(DRIP_MS / 4));
    const second = c.population(url, FIXTURE_POPULATION);
    await assert.rejects(first, { name: 'AbortError' });
    (await second).release();
    const started = downloadsStarted;
    const third = await c.population(url, FIXTURE_POPULATION);
    assert.equal(third.cached, true);
    assert.equal(downloadsStarted, started, 'no second download');
    third.release();
    c.close();
  });

  it('aborts the shared download once every waiting task has given up, and a new task starts afresh', async () => {
    const c = cache();
    const url = `${base}/c/circuit.gz?X-Amz-Signature=3`;
    const a = new AbortController();
    const b = new AbortController();
    const aborted = downloadsAborted;
    const started = downloadsStarted;
    const first = c.population(url, FIXTURE_POPULATION, a.signal);
    const second = c.population(url, FIXTURE_POPULATION, b.signal);
    await sleep(DRIP_MS / 4);
    a.abort();
    b.abort();
    await assert.rejects(first, { name: 'AbortError' });
    await assert.rejects(second, { name: 'AbortError' });
    for (let i = 0; i < 50 && downloadsAborted === aborted; i++) await sleep(20);
    assert.equal(downloadsAborted - aborted, 1, 'the download was stopped');
    const lease = await c.population(url, FIXTURE_POPULATION);
    assert.equal(downloadsStarted - started, 2);
    assert.equal(lease.cached, false);
    lease.release();
    c.close();
  });
});
