// Measurement pieces shared by the benchmarks: the product path (print(1+1) through the real
// gateway and worker processes) and the raw limit it is compared with, taken in the same run.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { gatewayEnv, type TestNamespace, workerEnv } from '../../services/platform/src/testing.ts';
import { type TestClients, testClients } from '../../test/support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from '../../test/support/processes.ts';
import { summarize } from './stats.ts';

export interface Stack {
  clients: TestClients;
  worker: ServiceProcess;
  gateway: ServiceProcess & { url: string };
  stop(): Promise<void>;
}

export async function startStack(
  ns: TestNamespace,
  workerExtra: Record<string, string> = {},
): Promise<Stack> {
  const clients = await testClients(ns);
  const worker = await startWorker(workerEnv(ns, workerExtra));
  const gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  return {
    clients,
    worker,
    gateway,
    async stop() {
      await gateway.stop();
      await worker.stop();
      await clients.close();
    },
  };
}

async function runPython(url: string, body: string): Promise<void> {
  const res = await fetch(`${url}/tools/run-python`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  if (res.status !== 200) throw new Error(`unexpected status ${res.status}`);
  await res.arrayBuffer();
}

/** Sequential POST /tools/run-python calls; `paceMs` leaves that much idle time between calls. */
export async function measureRunPython(url: string, n: number, paceMs = 0, script = 'print(1+1)') {
  const body = JSON.stringify({ python_script: script });
  for (let i = 0; i < 10; i++) await runPython(url, body); // warm up: JIT, connections
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    if (paceMs > 0) await new Promise((r) => setTimeout(r, paceMs));
    const t0 = performance.now();
    await runPython(url, body);
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

/** Throughput with `concurrency` requests always outstanding, over `total` requests. */
export async function measureThroughput(
  url: string,
  total: number,
  concurrency: number,
  script = 'print(1+1)',
) {
  const body = JSON.stringify({ python_script: script });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) await runPython(url, body);
    }),
  );
  return { total, concurrency, perSecond: Math.round((total / ((performance.now() - t0) / 1000)) * 10) / 10 };
}

/** The raw limit: a bare JetStream publish with PubAck, and a Redis XADD → XREAD wake. */
export async function measureRawLimit(clients: TestClients, ns: TestNamespace, n: number) {
  const jsm = await jetstreamManager(clients.nc);
  const stream = `${ns.names.stream}_RAW`;
  await jsm.streams.add({ name: stream, subjects: [`${ns.subjectPrefix}_raw.>`] });
  const publish: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await clients.js.publish(`${ns.subjectPrefix}_raw.x.${i}`, '{}');
    publish.push(performance.now() - t0);
  }
  await jsm.streams.delete(stream);
  const reader = clients.redis.duplicate();
  const wake: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${ns.keyPrefix}raw:${i}`;
    const t0 = performance.now();
    const read = reader.xread('BLOCK', 5000, 'STREAMS', key, '0');
    await clients.redis.xadd(key, '*', 'type', 'done');
    await read;
    wake.push(performance.now() - t0);
  }
  reader.disconnect();
  return { publish: summarize(publish), xaddXreadWake: summarize(wake) };
}

export function writeResult(name: string, data: unknown): string {
  return writeResultTo(`bench-results/${name}.json`, data);
}

/** Writes `data` (stamped with the time and the Node version) as JSON to `path`. */
export function writeResultTo(path: string, data: unknown): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(
    path,
    `${JSON.stringify({ at: new Date().toISOString(), node: process.version, ...(data as object) }, null, 2)}\n`,
  );
  return path;
}
