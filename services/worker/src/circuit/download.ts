// Step 1 of circuit_q (docs/circuit-analysis.md): stream a pre-signed circuit URL to disk with a size cap, connect
// and read timeouts, a redirect limit and an SSRF guard that pins each connection to the address it
// checked. The original read the whole body into memory with no timeout; this never buffers a body.
// Leaf module: node builtins and @neuroagent/platform errors only; never imports config or handlers.
import { createHash, randomUUID } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { open, rename, rm } from 'node:fs/promises';
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, isIPv4, isIPv6, type LookupFunction } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { InfrastructureError, TaskFailedError } from '@neuroagent/platform';

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

// ------------------------------------------------------------------ SSRF guard

type Range = readonly [prefix: number[], bits: number, reason: string];

const V4_BLOCKED: readonly Range[] = [
  [[0, 0, 0, 0], 8, 'unspecified ("this network")'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'carrier-grade NAT'],
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'IETF protocol assignment'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'benchmarking'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved or broadcast'],
];

const V6_BLOCKED: readonly Range[] = [
  [[0xfe, 0x80], 10, 'link-local'],
  [[0xfe, 0xc0], 10, 'site-local'],
  [[0xfc, 0x00], 7, 'unique local'],
  [[0xff, 0x00], 8, 'multicast'],
  [[0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, 'discard-only'],
];

/** Prefixes whose last 4 bytes are an IPv4 address, judged as that IPv4 address. */
const V6_EMBEDDING_V4: readonly [prefix: number[], bits: number][] = [
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96], // IPv4-mapped
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96], // IPv4-compatible (deprecated)
  [[0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], 96], // NAT64 well-known prefix
];

/**
 * Why a connection to `ip` is refused, or null when it is a public address. Covers loopback,
 * private, link-local, CGNAT, unspecified, multicast, broadcast/reserved, ULA, and IPv4 addresses
 * embedded in IPv6 (mapped, compatible, NAT64, 6to4).
 */
export function blockedAddressReason(ip: string): string | null {
  if (isIPv4(ip)) return v4Reason(ip.split('.').map(Number));
  const bytes = parseIPv6(ip);
  if (bytes === null) return 'not an IP address';
  if (bytes.every((b) => b === 0)) return 'unspecified';
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return 'loopback';
  for (const [prefix, bits] of V6_EMBEDDING_V4) {
    if (matches(bytes, prefix, bits)) return v4Reason(bytes.slice(12));
  }
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return v4Reason(bytes.slice(2, 6)); // 6to4
  for (const [prefix, bits, reason] of V6_BLOCKED) if (matches(bytes, prefix, bits)) return reason;
  return null;
}

function v4Reason(octets: number[]): string | null {
  for (const [prefix, bits, reason] of V4_BLOCKED) if (matches(octets, prefix, bits)) return reason;
  return null;
}

function matches(bytes: number[], prefix: number[], bits: number): boolean {
  for (let i = 0; i < bits; i += 8) {
    const n = Math.min(8, bits - i);
    const mask = (0xff << (8 - n)) & 0xff;
    if (((bytes[i / 8] ?? 0) & mask) !== ((prefix[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/** 16 bytes of an IPv6 address (zone id dropped, dotted-quad tail allowed), or null. */
function parseIPv6(text: string): number[] | null {
  const ip = text.replace(/%.*$/, '');
  if (!isIPv6(ip)) return null;
  let groups: string[] = [];
  const [head = '', tail] = ip.split('::') as [string, string | undefined];
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const expand = (g: string[]) =>
    g.flatMap((x) => {
      if (!x.includes('.')) return [x];
      const [a = 0, b = 0, c = 0, d = 0] = x.split('.').map(Number);
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  if (tail === undefined) {
    groups = expand(part(head));
  } else {
    const h = expand(part(head));
    const t = expand(part(tail));
    groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  }
  if (groups.length !== 8) return null;
  return groups.flatMap((g) => {
    const v = Number.parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

/** The address to connect to, after checking every address the host resolves to. */
async function resolveTarget(url: URL, allowPrivate: boolean): Promise<LookupAddress | null> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(host);
  if (literal !== 0) {
    const reason = allowPrivate ? null : blockedAddressReason(host);
    if (reason !== null) throw refused(url, host, reason);
    return null; // node connects to a literal without a lookup
  }
  let addresses: LookupAddress[];
  try {
    addresses = await lookup(host, { all: true, order: 'verbatim' });
  } catch (err) {
    throw new TaskFailedError('download_failed', `cannot resolve ${redactUrl(url)}: ${describe(err)}`, {
      cause: err,
    });
  }
  const first = addresses[0];
  if (first === undefined) {
    throw new TaskFailedError('download_failed', `cannot resolve ${redactUrl(url)}: no addresses`);
  }
  if (!allowPrivate) {
    // ANY bad address refuses the host: a name that mixes public and private answers is an attack.
    for (const { address } of addresses) {
      const reason = blockedAddressReason(address);
      if (reason !== null) throw refused(url, address, reason);
    }
  }
  return first;
}

function refused(url: URL, address: string, reason: string): TaskFailedError {
  return new TaskFailedError(
    'download_failed',
    `refusing to download ${redactUrl(url)}: ${address} is a ${reason} address`,
  );
}

/**
 * A `lookup` that answers with the address already checked. MUST be passed to every request: with
 * node's own lookup, a second DNS answer (rebinding) could point the socket somewhere unchecked.
 */
function pinnedLookup(pinned: LookupAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [pinned]);
    else callback(null, pinned.address, pinned.family);
  };
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
  return new TaskFailedError('download_failed', `GET ${redactUrl(url)} failed: ${describe(err)}`, {
    cause: err,
  });
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
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
    const pinned = await resolveTarget(current, opts.allowPrivate);
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
        throw new InfrastructureError('disk_write_failed', `cannot write ${destPath}: ${describe(err)}`, {
          cause: err,
        });
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
    throw new InfrastructureError('disk_write_failed', `cannot create ${temp}: ${describe(err)}`, {
      cause: err,
    });
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
          throw new InfrastructureError('disk_write_failed', `cannot write ${temp}: ${describe(err)}`, {
            cause: err,
          });
        });
      }
    } catch (err) {
      if (err instanceof TaskFailedError || err instanceof InfrastructureError) throw err;
      throw (
        ex.failure() ??
        new TaskFailedError(
          'download_failed',
          `GET ${redactUrl(url)} broke off after ${bytes} bytes: ${describe(err)}`,
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
