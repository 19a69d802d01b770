// `npm run bench:agent`: the scripted model's answers, the Prometheus parsing, and one smoke run
// of the whole bench against its own servers, the real gateway (the agent with the echo tool) and
// an echo worker, checking every figure of the report is there and positive.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { RecordedChatRequest } from '../../services/platform/src/testing-openai.ts';
import { agentScript, askFor, ECHO_ARGUMENTS, ECHO_TOOL, promValue } from '../bench/agent-path.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const request = (...messages: { role: string; content: string }[]): RecordedChatRequest => ({
  model: 'm',
  messages,
});

describe('agent bench: the scripted model', () => {
  it('answers "echo <n>" with n parallel echo calls, and a tool result with text', () => {
    const four = agentScript(request({ role: 'system', content: 's' }, { role: 'user', content: askFor(4) }));
    assert.equal(four.tool_calls?.length, 4);
    for (const c of four.tool_calls ?? []) assert.deepEqual(c, { name: 'echo', arguments: ECHO_ARGUMENTS });
    assert.equal(agentScript(request({ role: 'user', content: askFor(1) })).tool_calls?.length, 1);
    const answer = agentScript(
      request({ role: 'user', content: askFor(1) }, { role: 'tool', content: '{}' }),
    );
    assert.deepEqual(answer, { content: 'done' });
  });

  it('gives the baseline the echo definition without schema ids', () => {
    assert.equal(ECHO_TOOL.function.name, 'echo');
    assert.doesNotMatch(JSON.stringify(ECHO_TOOL.function.parameters), /\$id/);
    assert.ok((ECHO_TOOL.function.parameters as { properties?: object }).properties);
  });
});

describe('agent bench: Prometheus text', () => {
  const text = [
    '# HELP agent_loop_overhead_seconds x',
    '# TYPE agent_loop_overhead_seconds histogram',
    'agent_loop_overhead_seconds_bucket{le="0.005"} 3',
    'agent_loop_overhead_seconds_sum 0.0125',
    'agent_loop_overhead_seconds_count 4',
    'agent_tool_calls_total{tool="echo",status="failed"} 1',
    'agent_tool_calls_total{status="succeeded",tool="echo"} 7',
  ].join('\n');

  it('reads a series by name and exact labels, in any label order', () => {
    assert.equal(promValue(text, 'agent_loop_overhead_seconds_sum'), 0.0125);
    assert.equal(promValue(text, 'agent_loop_overhead_seconds_count'), 4);
    assert.equal(promValue(text, 'agent_tool_calls_total', { tool: 'echo', status: 'succeeded' }), 7);
    assert.equal(promValue(text, 'agent_tool_calls_total', { tool: 'echo', status: 'failed' }), 1);
  });

  it('reads an absent series as 0, like an unobserved counter', () => {
    assert.equal(promValue(text, 'agent_tool_calls_total', { tool: 'echo', status: 'cancelled' }), 0);
    assert.equal(promValue(text, 'agent_tool_calls_total'), 0, 'labelled samples are not the unlabelled one');
    assert.equal(promValue('', 'x'), 0);
  });
});

describe('npm run bench:agent -- --smoke', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('measures turns, their baselines and the raw path, and reports positive figures', {
    timeout: 180_000,
  }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-bench-test-'));
    const json = join(dir, 'agent.json');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['scripts/bench/agent-loop.ts', '--smoke', '--json', json],
      { cwd: ROOT, timeout: 170_000, maxBuffer: 10 * 1024 * 1024 },
    );
    assert.match(stdout, /^metric\s+product\s+raw\s+ratio\s+goal\s+met\?$/m);
    for (const row of [
      /^\(a\) turn, 1 echo call, p50\s+\S+ ms\s+\S+ ms\s+\S+×$/m,
      /^overhead per tool call, \(a\) − \(c\), p50\s+\S+ ms\s+\S+ ms\s+\S+×$/m,
      /^overhead per tool call, \(\(b\) − \(b′\)\) \/ 4, p50\s+\S+ ms/m,
      /^agent_loop_overhead_seconds mean, \(a\) turns\s+\S+ ms/m,
      /^ {2}CPU\/turn \(a\) gateway\s+\S+ ms/m,
    ]) {
      assert.match(stdout, row);
    }

    const r = JSON.parse(await readFile(json, 'utf8'));
    const positive = (v: unknown, what: string) =>
      assert.ok(typeof v === 'number' && v > 0, `${what} should be a number > 0, got ${JSON.stringify(v)}`);
    assert.match(r.command, /--smoke/);
    const n = r.config.rounds * r.config.perRound;
    assert.equal(n, 20);
    for (const kind of ['turn1', 'turn4', 'base1', 'base4', 'raw']) {
      assert.equal(r.latencyMs[kind].n, n, `${kind} samples`);
      positive(r.latencyMs[kind].p50, `${kind} p50`);
      positive(r.latencyMs[kind].p95, `${kind} p95`);
    }
    // Every measured turn was observed by the gateway, with its calls run as echo tasks.
    assert.deepEqual(
      { turns: r.metric.turn1.turns, calls: r.metric.turn1.echoCalls },
      { turns: n, calls: n },
    );
    assert.deepEqual(
      { turns: r.metric.turn4.turns, calls: r.metric.turn4.echoCalls },
      { turns: n, calls: 4 * n },
    );
    const o = r.overheadMs;
    for (const k of ['perCall1', 'perCall4', 'metricMean1', 'metricMean4', 'gatewayCpuPerCall1']) {
      positive(o[k], `overheadMs.${k}`);
    }
    assert.equal(typeof o.gatewayCpuPerCall4, 'number');
    // The gateway's own figure leaves out the model and the task: it is below the whole turn.
    assert.ok(o.metricMean1 < r.latencyMs.turn1.p50, 'agent_loop_overhead_seconds < the turn');
    for (const kind of ['turn1', 'turn4', 'base1', 'base4']) {
      positive(r.cpuMsPerSample[kind].gateway, `${kind} gateway CPU`);
    }
  });
});
