// The raw limit, measured against the same private servers as the product path: a bare JetStream
// publish, and the raw round trip — the client publishes, the raw worker process (raw-worker.ts)
// writes SET result + XADD progress and acks, the client's XREAD BLOCK (issued before the publish,
// from id 0) wakes, then it GETs the result. No HTTP, no auth, no rate limit, no ledger, no meta.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AckPolicy, type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { stopChild } from './teardown.ts';

const RAW_WORKER = fileURLToPath(new URL('./raw-worker.ts', import.meta.url));
const STREAM = 'RAW_BENCH';
const PUB_STREAM = 'RAW_PUBLISH';
const CONSUMER = 'raw';
const PREFIX = 'raw:';
const BODY = JSON.stringify({ payload: 1 });

export interface RoundTrip {
  total: number;
  /** Publish until PubAck. */
  publish: number;
  /** PubAck until the XREAD woke: the worker's pull, MULTI and the wake. */
  wait: number;
  get: number;
}

export interface Throughput {
  tasks: number;
  outstanding: number;
  ms: number;
  perSecond: number;
}

export interface RawPath {
  workerPid: number;
  barePublish(n: number): Promise<number[]>;
  xaddWake(n: number): Promise<number[]>;
  roundTrips(n: number): Promise<RoundTrip[]>;
  throughput(total: number, outstanding: number): Promise<Throughput>;
  close(): Promise<void>;
}

export async function startRawPath(natsUrl: string, redisUrl: string): Promise<RawPath> {
  const nc: NatsConnection = await connect({ servers: natsUrl, name: 'bench-raw-client' });
  const js: JetStreamClient = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ['rawbench.>'] });
  await jsm.streams.add({ name: PUB_STREAM, subjects: ['rawpub.>'] });
  await jsm.consumers.add(STREAM, {
    durable_name: CONSUMER,
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 256,
  });
  const redis = new Redis(redisUrl, { connectionName: 'bench-raw-client' });
  const blockers: Redis[] = [];
  const blocker = (i: number): Redis => {
    blockers[i] ??= new Redis(redisUrl, { connectionName: 'bench-raw-blocking' });
    return blockers[i];
  };

  const worker: ChildProcess = spawn(process.execPath, [RAW_WORKER], {
    env: {
      PATH: process.env.PATH ?? '',
      RAW_NATS_URL: natsUrl,
      RAW_REDIS_URL: redisUrl,
      RAW_STREAM: STREAM,
      RAW_CONSUMER: CONSUMER,
      RAW_KEY_PREFIX: PREFIX,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  worker.stderr?.on('data', (b: Buffer) => stderr.push(b.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: worker.stdout! }).on('line', (l) => {
      if (l === 'raw worker ready') resolve();
    });
    worker.once('exit', (code) => reject(new Error(`raw worker exited (${code}): ${stderr.join('')}`)));
  });
  await ready;
  if (worker.pid === undefined) throw new Error('raw worker has no pid');

  let seq = 0;
  /** One raw task, the client side; `b` is a blocking connection nobody else uses meanwhile. */
  async function roundTrip(b: Redis): Promise<RoundTrip> {
    const id = `${process.pid}-${++seq}`;
    const t0 = performance.now();
    // Issued first, from id 0: it sees the XADD whether it lands before or after the XREAD.
    const read = b.xread('BLOCK', 30_000, 'STREAMS', `${PREFIX}${id}:progress`, '0');
    await js.publish(`rawbench.${id}`, BODY);
    const t1 = performance.now();
    const woke = await read;
    const t2 = performance.now();
    if (woke === null) throw new Error(`raw task ${id}: no XADD within 30 s`);
    const result = await redis.get(`${PREFIX}${id}:result`);
    const t3 = performance.now();
    if (result !== BODY) throw new Error(`raw task ${id}: unexpected result ${result}`);
    return { total: t3 - t0, publish: t1 - t0, wait: t2 - t1, get: t3 - t2 };
  }

  return {
    workerPid: worker.pid,

    async barePublish(n) {
      const samples: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await js.publish(`rawpub.${i}`, BODY);
        samples.push(performance.now() - t0);
      }
      return samples;
    },

    async xaddWake(n) {
      const samples: number[] = [];
      const b = blocker(0);
      for (let i = 0; i < n; i++) {
        const key = `${PREFIX}wake:${++seq}`;
        const t0 = performance.now();
        const read = b.xread('BLOCK', 5000, 'STREAMS', key, '0');
        await redis.xadd(key, '*', 'type', 'done');
        await read;
        samples.push(performance.now() - t0);
      }
      return samples;
    },

    async roundTrips(n) {
      const out: RoundTrip[] = [];
      for (let i = 0; i < n; i++) out.push(await roundTrip(blocker(0)));
      return out;
    },

    // `outstanding` lanes, each with its own blocking connection, each keeping one task in flight:
    // per task one single-key XREAD BLOCK and one GET, the least Redis work a waiter can do (a
    // shared multi-key XREAD re-issued on every wake costs Redis O(keys) per wake instead). The
    // connections are opened before the clock starts.
    async throughput(total, outstanding) {
      for (let i = 0; i < outstanding; i++) await blocker(i).ping();
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: outstanding }, async (_, lane) => {
          while (next++ < total) await roundTrip(blocker(lane));
        }),
      );
      const ms = performance.now() - t0;
      return { tasks: total, outstanding, ms, perSecond: total / (ms / 1000) };
    },

    async close() {
      await stopChild(worker);
      for (const b of blockers) b?.disconnect();
      redis.disconnect();
      await nc.close();
    },
  };
}
