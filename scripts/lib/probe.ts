// TCP reachability for the dev runner: turn a service URL into host and port, and ask whether
// something accepts connections there. A probe only proves a listener, not which server it is.
// Imports node: builtins only.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DevError } from './dev-error.ts';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Host and port of one server URL (`nats://h:4222`, `redis://:pw@h:6379/0`, `[::1]:4222`, `h`).
 * A URL without a port gets `defaultPort`. Throws DevError `invalid_url` on anything else.
 */
export function parseHostPort(url: string, defaultPort: number): HostPort {
  const text = url.trim();
  // nats.js accepts a bare `host:port`; give it a scheme so that URL can parse it.
  const withScheme = text.includes('://') ? text : `tcp://${text}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch (err) {
    throw new DevError('invalid_url', `not a server URL: ${JSON.stringify(url)}`, { cause: err });
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') {
    throw new DevError('invalid_url', `no host in ${JSON.stringify(url)} (unix sockets are not supported)`);
  }
  return { host, port: parsed.port === '' ? defaultPort : Number(parsed.port) };
}

/** True when a TCP connection to host:port succeeds within timeoutMs; never rejects. */
export function isPortOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const settle = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    // Before the connection exists the idle timeout is the connect timeout: it catches a
    // firewall that drops packets instead of refusing.
    socket.setTimeout(timeoutMs, () => settle(false));
    socket.once('connect', () => settle(true));
    socket.once('error', () => settle(false));
  });
}

/**
 * Probes until host:port answers (true), `timeoutMs` passes (false) or `giveUp()` says to stop
 * waiting (false), e.g. because the process that should open the port has exited.
 */
export async function waitForPort(
  target: HostPort,
  timeoutMs: number,
  giveUp: () => boolean = () => false,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!giveUp()) {
    if (await isPortOpen(target.host, target.port, 1000)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(200);
  }
  return false;
}

/**
 * GETs `url` every `intervalMs` until it answers 200 (true), `timeoutMs` passes or `giveUp()` says
 * to stop (false). Connection errors just mean "not yet".
 */
export async function waitForHttpOk(
  url: string,
  timeoutMs: number,
  intervalMs: number,
  giveUp: () => boolean = () => false,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!giveUp() && Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(Math.max(intervalMs, 1000)) });
      await res.body?.cancel();
      if (res.status === 200) return true;
    } catch {
      // Refused, reset or timed out: the server is not up yet.
    }
    await sleep(intervalMs);
  }
  return false;
}
