// The product path, driven over HTTP with keep-alive connections (node:http): the no-op echo task
// through POST /tasks?wait= (auth, rate limit, meta, ledger, publish, worker, long-poll wake, read),
// and print(1+1) through POST /tools/run-python. Also parses the gateway's Server-Timing header.
import { Agent, request } from 'node:http';

export interface HttpResult {
  status: number;
  body: string;
  serverTiming: string | undefined;
  ms: number;
}

export interface HttpClient {
  agent: Agent;
  /** `headers` are added to (and may override) the bearer token and the JSON content type. */
  call(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<HttpResult>;
  close(): void;
}

export function httpClient(baseUrl: string, token: string, maxSockets = 256): HttpClient {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  return {
    agent,
    call(method, path, body, extra) {
      return new Promise((resolve, reject) => {
        const t0 = performance.now();
        const headers: Record<string, string> = { authorization: `Bearer ${token}` };
        if (body !== undefined) {
          headers['content-type'] = 'application/json';
          headers['content-length'] = String(Buffer.byteLength(body));
        }
        Object.assign(headers, extra);
        const req = request({ agent, host: url.hostname, port: url.port, method, path, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              serverTiming: res.headers['server-timing'] as string | undefined,
              ms: performance.now() - t0,
            }),
          );
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    },
    close() {
      agent.destroy();
    },
  };
}

/** `name;dur=1.2;desc="x", other;dur=3` → {name: 1.2, other: 3}; entries without dur are skipped. */
export function parseServerTiming(header: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!header) return out;
  for (const entry of header.split(',')) {
    const [rawName, ...params] = entry.split(';');
    const name = rawName?.trim();
    if (!name) continue;
    for (const p of params) {
      const m = /^\s*dur\s*=\s*"?([0-9.eE+-]+)"?\s*$/.exec(p);
      if (m) {
        const v = Number(m[1]);
        if (Number.isFinite(v)) out[name] = (out[name] ?? 0) + v;
      }
    }
  }
  return out;
}

export const ECHO_BODY = JSON.stringify({ task: 'echo', input: { payload: 1 } });
export const ECHO_PATH = '/tasks?wait=10';

export interface EchoSample {
  ms: number;
  stages: Record<string, number>;
}

/** Asks the gateway for its Server-Timing header (it times a request's stages only when asked). */
export const TIMED = { 'x-server-timing': '1' };

/**
 * One no-op task submitted and waited for in one request; throws unless it answered 200 succeeded.
 * `timed`: ask for the stages (the latency runs' breakdown); the throughput runs do not.
 */
export async function echoOnce(client: HttpClient, timed = false): Promise<EchoSample> {
  const res = await client.call('POST', ECHO_PATH, ECHO_BODY, timed ? TIMED : undefined);
  if (res.status !== 200) throw new Error(`POST ${ECHO_PATH}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  const record = JSON.parse(res.body) as { status?: string; result?: { payload?: unknown } };
  if (record.status !== 'succeeded' || record.result?.payload !== 1) {
    throw new Error(`POST ${ECHO_PATH}: unexpected record ${res.body.slice(0, 300)}`);
  }
  return { ms: res.ms, stages: parseServerTiming(res.serverTiming) };
}

export async function echoSequential(client: HttpClient, n: number): Promise<EchoSample[]> {
  const out: EchoSample[] = [];
  for (let i = 0; i < n; i++) out.push(await echoOnce(client, true));
  return out;
}

/** `outstanding` requests always in flight until `total` have answered. */
export async function concurrent(
  total: number,
  outstanding: number,
  one: () => Promise<unknown>,
): Promise<{ tasks: number; outstanding: number; ms: number; perSecond: number }> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(outstanding, total) }, async () => {
      while (next++ < total) await one();
    }),
  );
  const ms = performance.now() - t0;
  return { tasks: total, outstanding, ms, perSecond: total / (ms / 1000) };
}

export const PYTHON_BODY = JSON.stringify({ python_script: 'print(1+1)' });

export async function runPythonOnce(client: HttpClient): Promise<number> {
  const res = await client.call('POST', '/tools/run-python', PYTHON_BODY);
  if (res.status !== 200)
    throw new Error(`POST /tools/run-python: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body) as { result?: { status?: string; output?: string[] } };
  if (body.result?.status !== 'success' || body.result.output?.[0] !== '2') {
    throw new Error(`POST /tools/run-python: unexpected answer ${res.body.slice(0, 300)}`);
  }
  return res.ms;
}
