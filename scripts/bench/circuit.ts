// `npm run bench:circuit [-- --neurons 1000000]`: circuit population analysis on a generated
// population, through the real gateway and a circuit_q worker process:
//  - time to the first answer (probe + download + extract + read + load into DuckDB + query);
//  - time to a cached answer (probe + query);
//  - rows loaded per second (from the worker's own "population loaded" log line).
// The circuit is served over HTTP on loopback, like a pre-signed URL. Writes
// bench-results/circuit.json.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gatewayEnv, testNamespace, workerEnv } from '../../services/platform/src/testing.ts';
import { packCircuit, writeSonataCircuit } from '../../services/worker/test/sonata-fixture.ts';
import { testClients } from '../../test/support/namespace.ts';
import { startGateway, startWorker } from '../../test/support/processes.ts';
import { writeResult } from './lib.ts';
import { summarize } from './stats.ts';

const { values } = parseArgs({ options: { neurons: { type: 'string', default: '1000000' } } });
const count = Number(values.neurons);
const dir = mkdtempSync(join(tmpdir(), 'bench-circuit-'));
let t0 = performance.now();
await writeSonataCircuit(join(dir, 'src'), { count, seed: 1 });
await packCircuit(join(dir, 'src'), join(dir, 'circuit.gz'));
const archive = readFileSync(join(dir, 'circuit.gz'));
console.log(
  `generated ${count} neurons in ${Math.round(performance.now() - t0)} ms; archive ${(statSync(join(dir, 'circuit.gz')).size / 1e6).toFixed(1)} MB`,
);

const files = createServer((req, res) => {
  if (req.headers.range) {
    res.writeHead(206, { etag: '"b1"', 'content-range': `bytes 0-0/${archive.length}`, 'content-length': 1 });
    return void res.end(archive.subarray(0, 1));
  }
  res.writeHead(200, { etag: '"b1"', 'content-length': archive.length }).end(archive);
});
await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
const url = (n: number) =>
  `http://127.0.0.1:${(files.address() as { port: number }).port}/circuit.gz?sig=${n}`;

const ns = testNamespace('benchcircuit');
const clients = await testClients(ns);
const worker = await startWorker(
  workerEnv(ns, {
    TASKS_QUEUES: 'circuit_q',
    TASKS_CIRCUIT__ALLOW_PRIVATE_URLS: 'true',
    TASKS_CIRCUIT__CACHE_DIR: join(dir, 'cache'),
  }),
);
const gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
const sql =
  'SELECT layer, synapse_class, count(*) AS n, avg(x) AS mean_x FROM neurons GROUP BY ALL ORDER BY ALL';
const ask = async (n: number) => {
  const started = performance.now();
  const res = await fetch(`${gateway.url}/tools/circuit-population-analysis`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ presigned_url: url(n), sql }),
  });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
  return performance.now() - started;
};
try {
  t0 = performance.now();
  const first = await ask(0);
  const cached: number[] = [];
  for (let i = 1; i <= 20; i++) cached.push(await ask(i));
  const loaded = worker.lines.find((l) => l.msg === 'population loaded') as
    | { rows?: number; ms?: number }
    | undefined;
  const downloaded = worker.lines.find((l) => l.msg === 'circuit downloaded and extracted') as
    | { ms?: number }
    | undefined;
  const rowsPerSecond = loaded?.rows && loaded.ms ? Math.round(loaded.rows / (loaded.ms / 1000)) : null;
  const result = {
    neurons: count,
    archiveMB: Math.round((archive.length / 1e6) * 10) / 10,
    firstAnswerMs: Math.round(first),
    downloadAndExtractMs: downloaded?.ms ?? null,
    readAndLoadMs: loaded?.ms ?? null,
    rowsLoadedPerSecond: rowsPerSecond,
    cachedAnswerMs: summarize(cached),
  };
  console.table({
    'first answer (download + extract + load + query)': { ms: result.firstAnswerMs },
    '  of which download + extract': { ms: result.downloadAndExtractMs },
    '  of which read (h5wasm) + load (DuckDB)': { ms: result.readAndLoadMs },
    'cached answer p50': { ms: result.cachedAnswerMs.p50 },
    'cached answer p95': { ms: result.cachedAnswerMs.p95 },
  });
  console.log(`rows loaded per second (read + load): ${rowsPerSecond}`);
  console.log(`written to ${writeResult('circuit', result)}`);
} finally {
  await gateway.stop();
  await worker.stop();
  await clients.close();
  files.close();
  rmSync(dir, { recursive: true, force: true });
}
