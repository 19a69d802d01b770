// `node scripts/bench/run-python-latency.ts [--n 200]`: sequential latency of print(1+1) through
// POST /tools/run-python on a warm system (real gateway and worker processes), next to the raw
// limit measured in the same run: a bare JetStream publish (PubAck), and a Redis XADD followed by
// the XREAD that wakes on it. Prints a table and writes bench-results/run-python-latency.json.
// Uses its own stream and key prefix, so it never touches a running deployment.
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { gatewayEnv, testNamespace, workerEnv } from '../../services/platform/src/testing.ts';
import { testClients } from '../../test/support/namespace.ts';
import { startGateway, startWorker } from '../../test/support/processes.ts';
import { summarize } from './stats.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '200' } } });
const n = Number(values.n);
const ns = testNamespace('bench');
const clients = await testClients(ns);
const worker = await startWorker(workerEnv(ns));
const gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });

try {
  const body = JSON.stringify({ python_script: 'print(1+1)' });
  const call = async () => {
    const res = await fetch(`${gateway.url}/tools/run-python`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    if (res.status !== 200) throw new Error(`unexpected status ${res.status}`);
    await res.arrayBuffer();
  };
  for (let i = 0; i < 20; i++) await call(); // warm up: JIT, connections, Pyodide caches

  const http: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    http.push(performance.now() - t0);
  }

  // Raw limit, same run: the two hops every task makes, without HTTP, validation or Python.
  const jsm = await jetstreamManager(clients.nc);
  await jsm.streams.add({ name: `${ns.names.stream}_RAW`, subjects: [`${ns.subjectPrefix}_raw.>`] });
  const publish: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await clients.js.publish(`${ns.subjectPrefix}_raw.x.${i}`, '{}');
    publish.push(performance.now() - t0);
  }
  await jsm.streams.delete(`${ns.names.stream}_RAW`);
  const reader = clients.redis.duplicate();
  const redisWake: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${ns.keyPrefix}raw:${i}`;
    const t0 = performance.now();
    const read = reader.xread('BLOCK', 5000, 'STREAMS', key, '0');
    await clients.redis.xadd(key, '*', 'type', 'done');
    await read;
    redisWake.push(performance.now() - t0);
  }
  reader.disconnect();

  const rows = {
    'POST /tools/run-python print(1+1)': summarize(http),
    'raw: JetStream publish + PubAck': summarize(publish),
    'raw: Redis XADD → XREAD wake': summarize(redisWake),
  };
  const raw = rows['raw: JetStream publish + PubAck'].p50 + rows['raw: Redis XADD → XREAD wake'].p50;
  console.table(rows);
  console.log(
    `p50 ratio, product path / (publish + XADD→XREAD): ${(rows['POST /tools/run-python print(1+1)'].p50 / raw).toFixed(2)}`,
  );
  mkdirSync('bench-results', { recursive: true });
  writeFileSync(
    'bench-results/run-python-latency.json',
    JSON.stringify({ at: new Date().toISOString(), n, rows }, null, 2),
  );
} finally {
  await gateway.stop();
  await worker.stop();
  await clients.close();
}
