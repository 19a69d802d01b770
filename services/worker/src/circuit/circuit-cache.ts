// The circuit cache: a circuit is downloaded, extracted and loaded into DuckDB once, then answers
// every later question on it. Keyed by the URL without its signature query plus the object's
// ETag (or Last-Modified and size), so a fresh pre-signed URL for the same object hits the cache
// and a changed object misses it. Two bounds, both least-recently-used: extracted circuits on disk,
// and loaded populations in memory. Concurrent requests for the same circuit share one download and
// load, which runs under a signal of its own: one task's cancel or deadline only stops its own wait,
// and the shared work is aborted only when no task is left waiting for it.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { activeSpan, InfrastructureError, type Logger, SpanKind, withSpan } from '@neuroagent/platform';
import { abortError, circuitCacheKey, downloadToFile, probeUrl } from './download.ts';
import { openPopulationDb, type PopulationDb } from './duckdb-population.ts';
import { extractArchive } from './extract.ts';
import type { Hdf5ReaderLimits } from './hdf5-confined.ts';
import { findNodesFile, readNodePopulation } from './sonata.ts';

const DOWNLOAD_SPAN = { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'GET' } };
const EXTRACT_SPAN = { kind: SpanKind.INTERNAL };
const LOAD_SPAN = { kind: SpanKind.INTERNAL };

export interface CircuitCacheOptions {
  dir: string;
  maxDiskBytes: number;
  maxLoaded: number;
  download: {
    maxBytes: number;
    connectTimeoutMs: number;
    readTimeoutMs: number;
    maxRedirects: number;
    allowPrivate: boolean;
  };
  extract: { maxBytes: number; maxEntries: number };
  duckdbMemoryMb: number;
  /** Limits of the confined process that reads the nodes HDF5 file. */
  hdf5: Hdf5ReaderLimits;
  log: Logger;
}

export interface PopulationLease {
  db: PopulationDb;
  /** Whether the download, extraction and load were skipped. */
  cached: boolean;
  release(): void;
}

interface Loaded {
  db: PopulationDb;
  users: number;
}

/** One download-and-load shared by every task that asked for the same population meanwhile. */
interface SharedLoad {
  promise: Promise<Loaded>;
  waiters: number;
  settled: boolean;
  /** Set on success: the population, already counting one user per task still waiting. */
  result?: Loaded;
  abort: AbortController;
}

/** Waits for `promise` until `signal` aborts; the promise itself runs on. */
function waitUnlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

interface EntryMeta {
  bytes: number;
  lastUsed: number;
}

export function createCircuitCache(opts: CircuitCacheOptions) {
  const root = resolve(opts.dir);
  mkdirSync(root, { recursive: true });
  const loaded = new Map<string, Loaded>(); // key:population, in LRU order (oldest first)
  const loading = new Map<string, SharedLoad>();
  const log = opts.log;

  function touch(key: string): void {
    const metaPath = join(root, key, 'meta.json');
    try {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as EntryMeta;
      writeFileSync(metaPath, JSON.stringify({ ...meta, lastUsed: Date.now() }));
    } catch {
      // an entry without metadata is removed by the next eviction pass
    }
  }

  /** Downloads and extracts a circuit into `<dir>/<key>/circuit` unless it is already there. */
  async function ensureExtracted(
    url: string,
    key: string,
    expectedEtag: string | null,
    signal?: AbortSignal,
  ): Promise<string> {
    const entry = join(root, key);
    const extracted = join(entry, 'circuit');
    if (existsSync(join(entry, 'meta.json')) && existsSync(extracted)) {
      touch(key);
      return extracted;
    }
    rmSync(entry, { recursive: true, force: true });
    mkdirSync(entry, { recursive: true });
    try {
      const archive = join(entry, 'circuit.gz');
      const started = performance.now();
      // The span never names the URL: a pre-signed URL carries its signature in the query.
      const dl = await withSpan('circuit download', DOWNLOAD_SPAN, async (span) => {
        const got = await downloadToFile(url, archive, { ...opts.download, ...(signal ? { signal } : {}) });
        span?.setAttribute('http.response.body.size', got.bytes);
        return got;
      });
      if (expectedEtag !== null && dl.etag !== expectedEtag) {
        // The object changed between the probe and the download: its cache key would be wrong.
        throw new InfrastructureError('circuit_changed', 'the circuit changed while it was being downloaded');
      }
      const ex = await withSpan('circuit extract', EXTRACT_SPAN, async (span) => {
        const out = await extractArchive(archive, extracted, opts.extract);
        span?.setAttribute('neuroagent.circuit.extracted_bytes', out.bytes);
        return out;
      });
      rmSync(archive, { force: true });
      const meta: EntryMeta = { bytes: ex.bytes, lastUsed: Date.now() };
      writeFileSync(join(entry, 'meta.json'), JSON.stringify(meta));
      log.info(
        {
          key,
          downloadBytes: dl.bytes,
          extractedBytes: ex.bytes,
          ms: Math.round(performance.now() - started),
        },
        'circuit downloaded and extracted',
      );
    } catch (err) {
      rmSync(entry, { recursive: true, force: true });
      throw err;
    }
    evictDisk(key);
    return extracted;
  }

  /** Removes least recently used circuits until the disk budget holds (never `keep`). */
  function evictDisk(keep: string): void {
    const entries = readdirSync(root)
      .map((key) => {
        try {
          const meta = JSON.parse(readFileSync(join(root, key, 'meta.json'), 'utf8')) as EntryMeta;
          return { key, ...meta };
        } catch {
          return { key, bytes: 0, lastUsed: 0 };
        }
      })
      .sort((a, b) => a.lastUsed - b.lastUsed);
    let total = entries.reduce((sum, e) => sum + e.bytes, 0);
    for (const e of entries) {
      if (total <= opts.maxDiskBytes) break;
      if (e.key === keep || [...loaded.keys()].some((k) => k.startsWith(`${e.key}:`))) continue;
      rmSync(join(root, e.key), { recursive: true, force: true });
      total -= e.bytes;
      log.info({ key: e.key, bytes: e.bytes }, 'circuit evicted from the disk cache');
    }
  }

  /** Closes least recently used populations nobody is querying, down to maxLoaded. */
  function evictLoaded(): void {
    for (const [k, l] of loaded) {
      if (loaded.size <= opts.maxLoaded) break;
      if (l.users > 0) continue;
      loaded.delete(k);
      l.db.close();
      log.info({ key: k }, 'population unloaded from memory');
    }
  }

  async function load(
    url: string,
    key: string,
    etag: string | null,
    population: string,
    signal?: AbortSignal,
  ): Promise<Loaded> {
    const dir = await ensureExtracted(url, key, etag, signal);
    const started = performance.now();
    const { pop, db } = await withSpan('circuit load', LOAD_SPAN, async (span) => {
      const { nodesFile } = await findNodesFile(dir, population, opts.hdf5);
      const read = await readNodePopulation(nodesFile, population, opts.hdf5);
      span?.setAttribute('neuroagent.circuit.rows', read.count);
      return { pop: read, db: await openPopulationDb(read, { memoryLimitMb: opts.duckdbMemoryMb }) };
    });
    log.info(
      { key, population, rows: pop.count, ms: Math.round(performance.now() - started) },
      'population loaded',
    );
    return { db, users: 0 };
  }

  /**
   * Joins the load of `id`, starting it if none is under way. The load gets its own signal, aborted
   * only when the last waiter has given up; a load that finishes is cached even if nobody waits.
   * The population it resolves to already counts the caller as a user, so that no eviction can
   * close it between the load's end and the caller's first query.
   */
  async function joinLoad(
    id: string,
    start: (signal: AbortSignal) => Promise<Loaded>,
    signal: AbortSignal | undefined,
  ): Promise<Loaded> {
    let shared = loading.get(id);
    if (!shared) {
      const abort = new AbortController();
      const created: SharedLoad = {
        waiters: 0,
        settled: false,
        abort,
        promise: Promise.resolve(null as never),
      };
      created.promise = start(abort.signal)
        .then((entry) => {
          entry.users += created.waiters;
          created.result = entry;
          if (!loaded.has(id)) loaded.set(id, entry);
          return entry;
        })
        .finally(() => {
          created.settled = true;
          if (loading.get(id) === created) loading.delete(id);
        });
      // Waiters see the failure; without any left it must not become an unhandled rejection.
      created.promise.catch(() => {});
      loading.set(id, created);
      shared = created;
    }
    shared.waiters++;
    let joined = false;
    try {
      const entry = await waitUnlessAborted(shared.promise, signal);
      joined = true;
      return entry;
    } finally {
      shared.waiters--;
      // Counted as a user when the load finished, but gave up before it could use it.
      if (!joined && shared.result) shared.result.users--;
      if (shared.waiters === 0 && !shared.settled) {
        shared.abort.abort(new Error('every task waiting for this circuit gave up'));
      }
    }
  }

  return {
    async population(url: string, population: string, signal?: AbortSignal): Promise<PopulationLease> {
      const probe = await probeUrl(url, { ...opts.download, ...(signal ? { signal } : {}) });
      const key = circuitCacheKey(url, probe.etag, probe.size, probe.lastModified);
      const id = `${key}:${population}`;
      let entry = loaded.get(id);
      const cached = entry !== undefined;
      activeSpan()?.setAttribute('neuroagent.circuit.cached', cached);
      if (entry) {
        loaded.delete(id); // re-insert: most recently used last
        loaded.set(id, entry);
        touch(key);
        entry.users++;
      } else {
        entry = await joinLoad(id, (shared) => load(url, key, probe.etag, population, shared), signal);
      }
      evictLoaded();
      const held = entry;
      let released = false;
      return {
        db: held.db,
        cached,
        release() {
          if (released) return;
          released = true;
          held.users--;
          evictLoaded();
        },
      };
    },
    loadedCount: () => loaded.size,
    diskEntries: () => readdirSync(root).filter((k) => statSync(join(root, k)).isDirectory()),
    close(): void {
      for (const l of loaded.values()) l.db.close();
      loaded.clear();
    },
  };
}

export type CircuitCache = ReturnType<typeof createCircuitCache>;
