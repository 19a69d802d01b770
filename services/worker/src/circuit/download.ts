// Step 1 of circuit_q (docs/circuit-analysis.md): stream a pre-signed circuit URL to disk with a
// size cap, connect and read timeouts, a redirect limit and the SSRF guard (ssrf-guard.ts), which
// pins each connection to the address it checked. The original read the whole body into memory
// with no timeout; this never buffers a body. Imports node builtins, the platform's errors and
// ssrf-guard.ts only; never config or handlers.
import { createHash, randomUUID } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { open, rename, rm } from 'node:fs/promises';
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { basename, dirname, join } from 'node:path';
import { InfrastructureError, TaskFailedError } from '@neuroagent/platform';
import { describeNetworkError, pinnedLookup, resolveTarget } from './ssrf-guard.ts';

export interface DownloadOptions {
  /** Largest body accepted; a larger Content-Length or body gives `too_large`. */
  maxBytes: number;
  /** Time allowed for the TCP connect (and the TLS handshake for https). */
  connectTimeoutMs: number;
  /** Longest silence on the socket (waiting for headers or for body bytes). */
  readTimeoutMs: number;
  /** Redirects followed; one more gives `download_failed`. */
  maxRedirects: number;
  /** Skip the SSRF guard (tests, private deployments). */
  allowPrivate: boolean;
  signal?: AbortSignal;
}

export interface DownloadResult {
  bytes: number;
  etag: string | null;
  contentLength: number | null;
  /** The URL after redirects, redacted (no query, no userinfo): safe to log. */
  finalUrl: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

// ------------------------------------------------------------------ URLs

/**
 * The URL without userinfo, query string and fragment. Pre-signed URLs carry their credentials in
 * the query, so this is the only form of a URL that may appear in a message, a log line or a key.
 */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(String(url));
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

/** What identifies the object behind a URL: pre-signed URLs of one object differ only in the query. */
export function urlIdentity(url: string): string {
  const u = new URL(url);
  const kept = [...u.searchParams].filter(([name]) => !isSignatureParam(name));
  kept.sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : av > bv ? 1 : 0) : a < b ? -1 : 1));
  const query = new URLSearchParams(kept).toString();
  return `${u.protocol}//${u.host}${u.pathname}${query === '' ? '' : `?${query}`}`;
}

/**
 * Query parameters that sign a URL rather than name an object: AWS SigV4 and SigV2, Google Cloud
 * Storage and Azure SAS. They change on every pre-signing, so they are left out of the identity;
 * every other parameter (a version id, a path-like key) may name a different object and is kept.
 */
const SIGNATURE_PARAMS = new Set([
  'awsaccesskeyid',
  'expires',
  'signature',
  'x-amz-security-token',
  'googleaccessid',
  'sig',
  'se',
  'st',
  'sp',
  'sv',
  'sr',
  'spr',
  'skoid',
  'sktid',
  'skt',
  'ske',
  'sks',
  'skv',
]);

function isSignatureParam(name: string): boolean {
  const n = name.toLowerCase();
  return n.startsWith('x-amz-') || n.startsWith('x-goog-') || SIGNATURE_PARAMS.has(n);
}

/**
 * Cache key of a downloaded circuit: the object's identity (the URL without its signature) plus
 * its version: the ETag, else Last-Modified and the size together. The size alone never tells two
 * objects apart.
 */
export function circuitCacheKey(
  url: string,
  etag: string | null,
  size: number | null,
  lastModified: string | null = null,
): string {
  const version =
    etag !== null ? `etag:${etag}` : `last-modified:${lastModified ?? 'unknown'}\nsize:${size ?? 'unknown'}`;
  // '\n' never occurs in a serialised URL, so the parts cannot run into each other.
  return createHash('sha256')
    .update(`${urlIdentity(url)}\n${version}`)
    .digest('hex');
}

// ------------------------------------------------------------------ one HTTP exchange

interface Exchange {
  res: IncomingMessage;
  /** The timeout or abort that ended the exchange, if one did. */
  failure(): Error | undefined;
  close(): void;
}

export function abortError(signal: AbortSignal): DOMException {
  return new DOMException('the circuit download was aborted', { name: 'AbortError', cause: signal.reason });
}

/** Sends the GET and resolves once the response headers are in. Timers stay armed for the body. */
function openExchange(
  url: URL,
  pinned: LookupAddress | null,
  opts: DownloadOptions,
  headers: Record<string, string>,
): Promise<Exchange> {
  const { signal } = opts;
  return new Promise((resolve, reject) => {
    let failure: Error | undefined;
    let response: IncomingMessage | undefined;
    let connectTimer: NodeJS.Timeout | undefined;
    const fail = (err: Error) => {
      failure ??= err;
      response?.destroy(err);
      req.destroy(err);
    };
    const onAbort = () => fail(abortError(signal!));
    const close = () => {
      clearTimeout(connectTimer);
      signal?.removeEventListener('abort', onAbort);
      response?.destroy();
      req.destroy();
    };
    const secure = url.protocol === 'https:';
    const req: ClientRequest = (secure ? https : http).request(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        // A fresh socket per hop, so the pinned lookup and the connect timer apply to it. Userinfo in
        // the URL is never sent: it would follow redirects to other hosts.
        agent: false,
        ...(pinned === null ? {} : { lookup: pinnedLookup(pinned) }),
        headers: {
          accept: '*/*',
          'accept-encoding': 'identity',
          'user-agent': 'neuroagent-worker',
          ...headers,
        },
      },
      (res) => {
        response = res;
        resolve({ res, failure: () => failure, close });
      },
    );
    req.on('socket', (socket) => {
      connectTimer = setTimeout(
        () =>
          fail(
            new TaskFailedError(
              'download_failed',
              `could not connect to ${redactUrl(url)} within ${opts.connectTimeoutMs} ms`,
            ),
          ),
        opts.connectTimeoutMs,
      );
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(connectTimer);
        // Socket inactivity covers both the wait for headers and every gap in the body.
        socket.setTimeout(opts.readTimeoutMs, () =>
          fail(
            new TaskFailedError(
              'download_failed',
              `no data from ${redactUrl(url)} for ${opts.readTimeoutMs} ms (read timeout)`,
            ),
          ),
        );
      });
      socket.once('close', () => clearTimeout(connectTimer));
    });
    // Stays attached after the headers: a late socket error must not become an unhandled 'error'.
    req.on('error', (err) => {
      clearTimeout(connectTimer);
      signal?.removeEventListener('abort', onAbort);
      reject(failure ?? networkError(url, err));
    });
    if (signal?.aborted) return fail(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}

/**
 * Refused, unreachable, reset: a TaskFailedError, not an InfrastructureError. The URL is the
 * caller's, not one of our dependencies, and a wrong or expired URL will not fix itself on retry;
 * retrying would only hold a circuit_q slot for max_deliver attempts.
 */
function networkError(url: URL, err: unknown): Error {
  if (err instanceof TaskFailedError || (err instanceof Error && err.name === 'AbortError')) return err;
  return new TaskFailedError(
    'download_failed',
    `GET ${redactUrl(url)} failed: ${describeNetworkError(err)}`,
    {
      cause: err,
    },
  );
}

// ------------------------------------------------------------------ redirects

/**
 * Follows redirects to a 2xx response, re-checking the SSRF guard on every hop. The caller MUST
 * close the returned exchange.
 */
async function openFinal(
  url: string,
  opts: DownloadOptions,
  headers: Record<string, string>,
): Promise<{ ex: Exchange; url: URL }> {
  let current: URL;
  try {
    current = new URL(url);
  } catch (err) {
    throw new TaskFailedError('download_failed', 'the circuit URL is not a valid URL', { cause: err });
  }
  for (let redirects = 0; ; redirects++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw new TaskFailedError(
        'download_failed',
        `only http and https URLs are downloaded, not ${current.protocol.replace(/:$/, '')}`,
      );
    }
    const pinned = await resolveTarget(current, redactUrl(current), opts.allowPrivate);
    if (opts.signal?.aborted) throw abortError(opts.signal);
    const ex = await openExchange(current, pinned, opts, headers);
    const status = ex.res.statusCode ?? 0;
    if (status >= 200 && status <= 299) return { ex, url: current };
    ex.close();
    if (!REDIRECTS.has(status)) {
      throw new TaskFailedError(
        'download_failed',
        `GET ${redactUrl(current)} answered HTTP ${status} ${ex.res.statusMessage ?? ''}`.trimEnd(),
      );
    }
    if (redirects >= opts.maxRedirects) {
      throw new TaskFailedError(
        'download_failed',
        `too many redirects (more than ${opts.maxRedirects}) from ${redactUrl(url)}`,
      );
    }
    current = nextHop(current, ex.res.headers.location);
  }
}

function nextHop(current: URL, location: string | undefined): URL {
  if (location === undefined || location === '') {
    throw new TaskFailedError('download_failed', `${redactUrl(current)} redirected without a Location`);
  }
  try {
    return new URL(location, current);
  } catch (err) {
    throw new TaskFailedError('download_failed', `${redactUrl(current)} redirected to an invalid URL`, {
      cause: err,
    });
  }
}

/** Whatever failed, an aborted signal wins: the caller asked to stop and must see an AbortError. */
function afterAbort(err: unknown, signal: AbortSignal | undefined): unknown {
  return signal?.aborted && !(err instanceof InfrastructureError) ? abortError(signal) : err;
}

// ------------------------------------------------------------------ probe

export interface ProbeResult {
  etag: string | null;
  lastModified: string | null;
  /** Size of the whole object (from Content-Range, else Content-Length), or null if not given. */
  size: number | null;
  /** The URL after redirects, redacted (no query, no userinfo): safe to log. */
  finalUrl: string;
}

/**
 * The object's ETag and size without downloading it, for the cache key. A GET of one byte, not a
 * HEAD: a pre-signed S3 URL is signed for one method, so HEAD on a GET URL answers 403.
 */
export async function probeUrl(url: string, opts: DownloadOptions): Promise<ProbeResult> {
  try {
    const { ex, url: final } = await openFinal(url, opts, { range: 'bytes=0-0' });
    try {
      const h = ex.res.headers;
      const size =
        ex.res.statusCode === 206
          ? parseLength(/\/(\d+)$/.exec(h['content-range'] ?? '')?.[1])
          : parseLength(h['content-length']);
      return {
        etag: h.etag ?? null,
        lastModified: h['last-modified'] ?? null,
        size,
        finalUrl: redactUrl(final),
      };
    } finally {
      ex.close();
    }
  } catch (err) {
    throw afterAbort(err, opts.signal);
  }
}

// ------------------------------------------------------------------ download

/**
 * Streams `url` into `destPath` (via a temp file next to it, renamed at the end). On any failure
 * the temp file is removed and `destPath` is left untouched. Throws TaskFailedError
 * `download_failed` / `too_large`, InfrastructureError when our own disk fails, and an AbortError
 * when `signal` fires.
 */
export async function downloadToFile(
  url: string,
  destPath: string,
  opts: DownloadOptions,
): Promise<DownloadResult> {
  const temp = join(dirname(destPath), `.${basename(destPath)}.${randomUUID().slice(0, 8)}.part`);
  try {
    const { ex, url: final } = await openFinal(url, opts, {});
    try {
      const contentLength = parseLength(ex.res.headers['content-length']);
      if (contentLength !== null && contentLength > opts.maxBytes) {
        throw tooLarge(final, opts.maxBytes, `Content-Length is ${contentLength}`);
      }
      const bytes = await writeBody(ex, final, temp, opts, contentLength);
      await rename(temp, destPath).catch((err: unknown) => {
        throw new InfrastructureError(
          'disk_write_failed',
          `cannot write ${destPath}: ${describeNetworkError(err)}`,
          {
            cause: err,
          },
        );
      });
      return { bytes, etag: ex.res.headers.etag ?? null, contentLength, finalUrl: redactUrl(final) };
    } finally {
      ex.close();
    }
  } catch (err) {
    await rm(temp, { force: true });
    throw afterAbort(err, opts.signal);
  }
}

function parseLength(header: string | undefined): number | null {
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : null;
}

function tooLarge(url: URL, maxBytes: number, detail: string): TaskFailedError {
  return new TaskFailedError(
    'too_large',
    `${redactUrl(url)} is larger than the ${maxBytes}-byte download limit (${detail})`,
  );
}

async function writeBody(
  ex: Exchange,
  url: URL,
  temp: string,
  opts: DownloadOptions,
  contentLength: number | null,
): Promise<number> {
  const file = await open(temp, 'wx').catch((err: unknown) => {
    throw new InfrastructureError(
      'disk_write_failed',
      `cannot create ${temp}: ${describeNetworkError(err)}`,
      {
        cause: err,
      },
    );
  });
  let bytes = 0;
  try {
    try {
      for await (const chunk of ex.res as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        // MUST stay before the write: a body without Content-Length is capped here and only here.
        if (bytes > opts.maxBytes)
          throw tooLarge(url, opts.maxBytes, `the body passed ${opts.maxBytes} bytes`);
        await file.write(chunk).catch((err: unknown) => {
          throw new InfrastructureError(
            'disk_write_failed',
            `cannot write ${temp}: ${describeNetworkError(err)}`,
            {
              cause: err,
            },
          );
        });
      }
    } catch (err) {
      if (err instanceof TaskFailedError || err instanceof InfrastructureError) throw err;
      throw (
        ex.failure() ??
        new TaskFailedError(
          'download_failed',
          `GET ${redactUrl(url)} broke off after ${bytes} bytes: ${describeNetworkError(err)}`,
          { cause: err },
        )
      );
    }
    if (contentLength !== null && bytes !== contentLength) {
      throw new TaskFailedError(
        'download_failed',
        `GET ${redactUrl(url)} ended after ${bytes} of ${contentLength} bytes`,
      );
    }
    // Without the fsync, a crash soon after the rename could leave a short file under the final name.
    await file.sync();
  } finally {
    await file.close();
  }
  return bytes;
}
