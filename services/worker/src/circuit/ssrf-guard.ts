// The SSRF guard of circuit downloads (docs/circuit-analysis.md): a pre-signed URL comes from the
// caller, so the host it names may resolve to loopback, a private network or a cloud metadata
// address. Every address a host resolves to is checked, any bad one refuses the host, and the
// connection is pinned to the checked address (pinnedLookup), so a second DNS answer (rebinding)
// cannot point the socket elsewhere. Leaf module: node builtins and the platform's errors only.
import type { LookupAddress } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { isIP, isIPv4, isIPv6, type LookupFunction } from 'node:net';
import { TaskFailedError } from '@neuroagent/platform';

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
export async function resolveTarget(
  url: URL,
  shown: string,
  allowPrivate: boolean,
): Promise<LookupAddress | null> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(host);
  if (literal !== 0) {
    const reason = allowPrivate ? null : blockedAddressReason(host);
    if (reason !== null) throw refused(shown, host, reason);
    return null; // node connects to a literal without a lookup
  }
  let addresses: LookupAddress[];
  try {
    addresses = await lookup(host, { all: true, order: 'verbatim' });
  } catch (err) {
    throw new TaskFailedError('download_failed', `cannot resolve ${shown}: ${describeNetworkError(err)}`, {
      cause: err,
    });
  }
  const first = addresses[0];
  if (first === undefined) {
    throw new TaskFailedError('download_failed', `cannot resolve ${shown}: no addresses`);
  }
  if (!allowPrivate) {
    // ANY bad address refuses the host: a name that mixes public and private answers is an attack.
    for (const { address } of addresses) {
      const reason = blockedAddressReason(address);
      if (reason !== null) throw refused(shown, address, reason);
    }
  }
  return first;
}

function refused(shown: string, address: string, reason: string): TaskFailedError {
  return new TaskFailedError(
    'download_failed',
    `refusing to download ${shown}: ${address} is a ${reason} address`,
  );
}

/**
 * A `lookup` that answers with the address already checked. MUST be passed to every request: with
 * node's own lookup, a second DNS answer (rebinding) could point the socket somewhere unchecked.
 */
export function pinnedLookup(pinned: LookupAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [pinned]);
    else callback(null, pinned.address, pinned.family);
  };
}

/** A socket error as `CODE message`, without repeating a code the message already holds. */
export function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
}
