// Many concurrent long-poll waiters on one gateway: W echo tasks are submitted while no echo
// worker runs, W `GET /tasks/{id}?wait=60` requests are opened (one socket each), then the worker
// starts and every task finishes. Measured: the gateway's Redis connections (CLIENT LIST, by the
// connection names the gateway sets), its RSS before and with the W waiters, and each waiter's
// wake-up latency = arrival of its response − the millisecond in the id of its task's `done`
// stream entry (Redis's clock, the same host clock as ours).
import type { Redis } from 'ioredis';
import { processRssKb } from './process-cpu.ts';
import { concurrent, type HttpClient, httpClient } from './product-path.ts';
import { summarize } from './stats.ts';

export interface WaitersOptions {
  url: string;
  token: string;
  count: number;
  /** Admin connection to the private Redis (CLIENT LIST, XREVRANGE). */
  redis: Redis;
  progressKey(taskId: string): string;
  gatewayPid: () => number;
  /** Starts an echo_q worker (none may run while the waiters are opened). */
  startWorker(): Promise<void>;
  log(msg: string): void;
}

export interface RedisClientInfo {
  name: string;
  flags: string;
  cmd: string;
}

/** CLIENT LIST text → one entry per connection. */
export function parseClientList(text: string): RedisClientInfo[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const f = Object.fromEntries(
        line
          .trim()
          .split(' ')
          .map((kv) => {
            const i = kv.indexOf('=');
            return [kv.slice(0, i), kv.slice(i + 1)];
          }),
      );
      return { name: f.name ?? '', flags: f.flags ?? '', cmd: f.cmd ?? '' };
    });
}

/** The gateway's connections (names `gateway`, `gateway-longpoll`, …) and how many are blocked. */
export function gatewayConnections(clients: RedisClientInfo[]) {
  const mine = clients.filter((c) => c.name === 'gateway' || c.name.startsWith('gateway-'));
  const byName: Record<string, number> = {};
  for (const c of mine) byName[c.name] = (byName[c.name] ?? 0) + 1;
  return { total: mine.length, blocking: mine.filter((c) => c.flags.includes('b')).length, byName };
}

const nowMs = () => performance.timeOrigin + performance.now();

async function waiterGauge(admin: HttpClient): Promise<number> {
  const res = await admin.call('GET', '/metrics');
  const m = /^long_poll_waiters(?:\{[^}]*\})?\s+(\d+)/m.exec(res.body);
  return m ? Number(m[1]) : -1;
}

async function untilWaiters(admin: HttpClient, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await waiterGauge(admin);
    if (got >= n) return;
    if (got < 0) throw new Error('GET /metrics has no long_poll_waiters gauge');
    if (Date.now() > deadline)
      throw new Error(`only ${got} of ${n} waiters registered after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function measureWaiters(opts: WaitersOptions) {
  const { count, redis } = opts;
  const submitter = httpClient(opts.url, opts.token, 100);
  const admin = httpClient(opts.url, opts.token, 2);
  const waiters = httpClient(opts.url, opts.token, Number.POSITIVE_INFINITY);
  try {
    const ids: string[] = [];
    const tSubmit = performance.now();
    const body = JSON.stringify({ task: 'echo', input: { payload: 1 } });
    await concurrent(count, 100, async () => {
      const res = await submitter.call('POST', '/tasks', body);
      if (res.status !== 202) throw new Error(`POST /tasks: HTTP ${res.status} ${res.body.slice(0, 200)}`);
      ids.push((JSON.parse(res.body) as { task_id: string }).task_id);
    });
    opts.log(`  submitted ${count} echo tasks in ${Math.round(performance.now() - tSubmit)} ms`);
    submitter.close();

    const rssBeforeKb = processRssKb(opts.gatewayPid());
    const connectionsBefore = gatewayConnections(parseClientList(String(await redis.client('LIST'))));

    // Opened in chunks, each registered before the next, so the listen backlog never overflows.
    const arrivals = new Map<string, { at: number; status: number }>();
    const answered: Promise<void>[] = [];
    const tOpen = performance.now();
    const chunk = 500;
    for (let i = 0; i < ids.length; i += chunk) {
      for (const id of ids.slice(i, i + chunk)) {
        answered.push(
          waiters.call('GET', `/tasks/${id}?wait=60`).then((res) => {
            arrivals.set(id, { at: nowMs(), status: res.status });
          }),
        );
      }
      await untilWaiters(admin, Math.min(i + chunk, ids.length), 120_000);
    }
    const openMs = performance.now() - tOpen;
    opts.log(`  ${count} waiters open after ${Math.round(openMs)} ms`);
    const rssWithKb = processRssKb(opts.gatewayPid());
    const connectionsWith = gatewayConnections(parseClientList(String(await redis.client('LIST'))));
    if (arrivals.size > 0) throw new Error(`${arrivals.size} waiters answered before any worker ran`);

    const tWorker = nowMs();
    await opts.startWorker();
    await Promise.all(answered);
    const lastArrival = Math.max(...[...arrivals.values()].map((a) => a.at));
    const notOk = [...arrivals.values()].filter((a) => a.status !== 200).length;
    if (notOk > 0) throw new Error(`${notOk} of ${count} waiters did not get 200`);

    // The `done` entry of each task's progress stream: its id's milliseconds are when the worker's
    // MULTI ran in Redis.
    const pipe = redis.pipeline();
    for (const id of ids) pipe.xrevrange(opts.progressKey(id), '+', '-', 'COUNT', 1);
    const res = (await pipe.exec()) ?? [];
    const latencies: number[] = [];
    let firstDone = Number.POSITIVE_INFINITY;
    ids.forEach((id, i) => {
      const entries = res[i]?.[1] as [string, string[]][] | undefined;
      const entry = entries?.[0];
      const type = entry?.[1][1];
      if (!entry || type !== 'done') throw new Error(`task ${id} has no done event`);
      const doneAt = Number(entry[0].split('-')[0]);
      firstDone = Math.min(firstDone, doneAt);
      latencies.push((arrivals.get(id)?.at ?? Number.NaN) - doneAt);
    });
    return {
      waiters: count,
      openMs: Math.round(openMs),
      redisConnections: { before: connectionsBefore, withWaiters: connectionsWith },
      gatewayRssMb: {
        before: Math.round(rssBeforeKb / 102.4) / 10,
        withWaiters: Math.round(rssWithKb / 102.4) / 10,
        perWaiterKb: Math.round(((rssWithKb - rssBeforeKb) / count) * 100) / 100,
      },
      wakeMs: summarize(latencies),
      allAnsweredMs: {
        fromFirstDone: Math.round(lastArrival - firstDone),
        fromWorkerStart: Math.round(lastArrival - tWorker),
      },
    };
  } finally {
    submitter.close();
    admin.close();
    waiters.close();
  }
}
