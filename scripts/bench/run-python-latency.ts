// `npm run bench:run-python [-- --n 200]`: sequential latency of print(1+1) through
// POST /tools/run-python on a warm system (real gateway and worker processes), next to the raw
// limit measured in the same run: a bare JetStream publish (PubAck), and a Redis XADD followed by
// the XREAD that wakes on it. Prints a table and writes bench-results/run-python-latency.json.
// Uses its own stream and key prefix, so it never touches a running deployment.
import { parseArgs } from 'node:util';
import { testNamespace } from '../../services/platform/src/testing.ts';
import { measureRawLimit, measureRunPython, startStack, writeResult } from './lib.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '200' } } });
const n = Number(values.n);
const ns = testNamespace('bench');
const stack = await startStack(ns);
try {
  const http = await measureRunPython(stack.gateway.url, n);
  const raw = await measureRawLimit(stack.clients, ns, n);
  const rows = {
    'POST /tools/run-python print(1+1)': http,
    'raw: JetStream publish + PubAck': raw.publish,
    'raw: Redis XADD → XREAD wake': raw.xaddXreadWake,
  };
  console.table(rows);
  const rawP50 = raw.publish.p50 + raw.xaddXreadWake.p50;
  console.log(`p50 ratio, product path / (publish + XADD→XREAD): ${(http.p50 / rawP50).toFixed(2)}`);
  console.log(`written to ${writeResult('run-python-latency', { n, rows })}`);
} finally {
  await stack.stop();
}
