// The pieces of `npm run bench:agent` (agent-loop.ts): the scripted model's answers, one agent turn
// through POST /threads/{id}/messages, and its baseline — the same parts done by the client itself
// (two streamed model calls with the openai SDK around POST /tasks?wait=5) — plus the reading of
// the gateway's agent_loop_overhead_seconds off GET /metrics.

import type OpenAI from 'openai';
import type {
  ChatCompletionFunctionTool,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { echo } from '../../contracts/src/echo.ts';
import { DEFAULT_SYSTEM_PROMPT } from '../../services/gateway/src/agent/settings.ts';
import type { RecordedChatRequest, ScriptedReply } from '../../services/platform/src/testing-openai.ts';
import type { HttpClient } from './product-path.ts';

/** The model the gateway asks for by default (NEUROAGENT_LLM__MODEL); the baseline asks for it too. */
export const BENCH_MODEL = 'gpt-5-mini';
export const ECHO_ARGUMENTS = JSON.stringify({ payload: 1 });
const TASK_PATH = '/tasks?wait=5';
const TASK_BODY = JSON.stringify({ task: 'echo', input: { payload: 1 } });

/** The user message that makes the scripted model call echo `calls` times in one reply. */
export const askFor = (calls: number) => `echo ${calls}`;

/**
 * The scripted model: a user message `echo <n>` is answered with n parallel echo calls, a tool
 * result with text, so every turn is one tool round and two model calls.
 */
export function agentScript(request: RecordedChatRequest): ScriptedReply {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { content: 'done' };
  const n = Number(/^echo (\d+)$/.exec(typeof last?.content === 'string' ? last.content : '')?.[1] ?? 1);
  return { tool_calls: Array.from({ length: n }, () => ({ name: 'echo', arguments: ECHO_ARGUMENTS })) };
}

/** The definition the gateway gives the model for echo (tool-calls.ts toolDefinition), rebuilt. */
export const ECHO_TOOL: ChatCompletionFunctionTool = {
  type: 'function',
  function: {
    name: echo.name,
    description: echo.agent?.description ?? '',
    parameters: JSON.parse(JSON.stringify(echo.input, (k, v) => (k === '$id' ? undefined : v))),
  },
};

/** Thrown when a sample did not go as scripted: the figures of a broken path are not reported. */
export class BenchSampleError extends Error {
  readonly code = 'bench_sample_failed';
  constructor(message: string) {
    super(message);
    this.name = 'BenchSampleError';
  }
}

export async function newThread(client: HttpClient): Promise<string> {
  const res = await client.call('POST', '/threads', '{}');
  if (res.status !== 201)
    throw new BenchSampleError(`POST /threads: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  return (JSON.parse(res.body) as { id: string }).id;
}

interface TurnBody {
  turn?: { status?: string; rounds?: number };
  messages?: { role: string; tool_status: string | null }[];
}

/** One turn of a fresh thread that makes `calls` echo calls; its client-side wall time in ms. */
export async function turnOnce(client: HttpClient, threadId: string, calls: number): Promise<number> {
  const path = `/threads/${threadId}/messages`;
  const res = await client.call('POST', path, JSON.stringify({ content: askFor(calls) }), {
    accept: 'application/json',
  });
  if (res.status !== 200)
    throw new BenchSampleError(`POST ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body) as TurnBody;
  const tools = (body.messages ?? []).filter((m) => m.role === 'tool');
  // user, assistant (the calls), one result per call, assistant (the answer)
  if (
    body.turn?.status !== 'completed' ||
    body.turn.rounds !== 1 ||
    body.messages?.length !== calls + 3 ||
    tools.length !== calls ||
    tools.some((m) => m.tool_status !== 'succeeded')
  ) {
    throw new BenchSampleError(`POST ${path}: not a completed one-round turn: ${res.body.slice(0, 500)}`);
  }
  return res.ms;
}

interface StreamedReply {
  content: string;
  calls: { id: string; name: string; arguments: string }[];
}

/** One streamed chat completion, reassembled as the gateway's model client does. */
async function streamModel(openai: OpenAI, messages: ChatCompletionMessageParam[]): Promise<StreamedReply> {
  const stream = await openai.chat.completions.create({
    model: BENCH_MODEL,
    messages,
    tools: [ECHO_TOOL],
    stream: true,
    stream_options: { include_usage: true },
  });
  const out: StreamedReply = { content: '', calls: [] };
  for await (const chunk of stream) {
    const delta = chunk.choices?.[0]?.delta;
    if (!delta) continue;
    if (delta.content) out.content += delta.content;
    for (const piece of delta.tool_calls ?? []) {
      const call = out.calls[piece.index] ?? { id: '', name: '', arguments: '' };
      out.calls[piece.index] = call;
      if (piece.id) call.id = piece.id;
      if (piece.function?.name) call.name += piece.function.name;
      if (piece.function?.arguments) call.arguments += piece.function.arguments;
    }
  }
  return out;
}

/** POST /tasks?wait=5 of the no-op echo (the product path): the record's result. */
async function echoTask(client: HttpClient): Promise<{ id: string; result: unknown }> {
  const res = await client.call('POST', TASK_PATH, TASK_BODY);
  const record = JSON.parse(res.body) as { id?: string; status?: string; result?: { payload?: unknown } };
  if (res.status !== 200 || record.status !== 'succeeded' || record.result?.payload !== 1) {
    throw new BenchSampleError(`POST ${TASK_PATH}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  }
  return { id: record.id ?? '', result: record.result };
}

/**
 * The baseline of a turn with `calls` echo calls, done by the client: the model call that asks for
 * the tools, the tasks (in parallel) through the product path, the model call that reads their
 * results. Its wall time in ms.
 */
export async function baselineOnce(openai: OpenAI, client: HttpClient, calls: number): Promise<number> {
  const t0 = performance.now();
  const messages: ChatCompletionMessageParam[] = [
    { role: 'system', content: DEFAULT_SYSTEM_PROMPT },
    { role: 'user', content: askFor(calls) },
  ];
  const first = await streamModel(openai, messages);
  if (first.calls.length !== calls) {
    throw new BenchSampleError(`baseline: the model asked for ${first.calls.length} calls, not ${calls}`);
  }
  const results = await Promise.all(first.calls.map(() => echoTask(client)));
  messages.push(
    {
      role: 'assistant',
      content: null,
      tool_calls: first.calls.map((c) => ({
        id: c.id,
        type: 'function' as const,
        function: { name: c.name, arguments: c.arguments },
      })),
    },
    ...first.calls.map((c, i) => ({
      role: 'tool' as const,
      tool_call_id: c.id,
      content: JSON.stringify({ status: 'succeeded', task_id: results[i]?.id, result: results[i]?.result }),
    })),
  );
  const second = await streamModel(openai, messages);
  if (second.content !== 'done') throw new BenchSampleError(`baseline: unexpected answer ${second.content}`);
  return performance.now() - t0;
}

/**
 * The value of a sample of the Prometheus text exposition: `name` with exactly `labels` (none:
 * the unlabelled sample). 0 when the series is absent, as an unobserved counter reads.
 */
export function promValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .sort()
      .join(',');
    if (have === want) return Number(m[3]);
  }
  return 0;
}

export interface OverheadReading {
  /** agent_loop_overhead_seconds_sum: seconds, summed over the observed turns (per tool call each). */
  sum: number;
  /** agent_loop_overhead_seconds_count: turns with tool calls. */
  count: number;
  /** agent_tool_calls_total{tool="echo",status="succeeded"}. */
  echoCalls: number;
}

export async function readOverhead(client: HttpClient): Promise<OverheadReading> {
  const res = await client.call('GET', '/metrics');
  if (res.status !== 200) throw new BenchSampleError(`GET /metrics: HTTP ${res.status}`);
  return {
    sum: promValue(res.body, 'agent_loop_overhead_seconds_sum'),
    count: promValue(res.body, 'agent_loop_overhead_seconds_count'),
    echoCalls: promValue(res.body, 'agent_tool_calls_total', { tool: 'echo', status: 'succeeded' }),
  };
}
