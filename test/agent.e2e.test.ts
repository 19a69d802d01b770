// The agent end to end: the real gateway and worker processes on real NATS, Redis and SQLite, with
// auth on, and a scripted OpenAI-compatible server in this process as the model. A turn runs a
// run_python tool call as a task of the thread's owner, and a client that lost its stream resumes
// it from Last-Event-ID without seeing an event twice.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Message, MessageList, Thread, TokenUsage, Turn } from '@neuroagent/contracts';
import { gatewayEnv, testNamespace, workerEnv } from '@neuroagent/platform/testing';
import { type OpenAiTestServer, startOpenAiTestServer } from '@neuroagent/platform/testing-openai';
import { signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { apiCaller } from './support/http.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';
import { eventOrder, framesUntil, type SseFrame, sseFrames, textOf } from './support/sse.ts';

const SECRET = randomBytes(32).toString('base64url');
const GRACE_S = 5;

/** Redis stream ids ("ms-seq") in order. */
function streamIdAfter(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am > bm || (am === bm && as > bs);
}

interface ToolCallData {
  id: string;
  name: string;
  arguments: string;
  task_id: string | null;
  round: number;
}
interface ToolResultData {
  tool_call_id: string;
  task_id: string | null;
  status: string;
  result?: { result: { status: string; output: string[]; return_value: unknown } };
  error?: unknown;
  truncated: boolean;
}

describe('the agent with the real gateway and worker processes', () => {
  const ns = testNamespace('agente2e');
  let clients: TestClients;
  let llm: OpenAiTestServer;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let alice = '';
  let bob = '';

  before(async () => {
    clients = await testClients(ns);
    llm = await startOpenAiTestServer([]);
    worker = await startWorker(
      workerEnv(ns, { TASKS_PYTHON__THREADS: '1', TASKS_PYTHON__TIMEOUT_S: '60', TASKS_QUEUES: 'python_q' }),
      120_000,
    );
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns, {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        NEUROAGENT_LLM__BASE_URL: llm.baseUrl,
        NEUROAGENT_LLM__API_KEY: 'test-key',
        NEUROAGENT_LLM__MODEL: 'test-model',
        NEUROAGENT_LLM__MAX_RETRIES: '0',
        NEUROAGENT_AGENT__DISCONNECT_GRACE_S: String(GRACE_S),
      }),
    });
    alice = await signDevToken({ secret: SECRET, sub: 'alice', expiresInS: 600 });
    bob = await signDevToken({ secret: SECRET, sub: 'bob', expiresInS: 600 });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await llm?.close();
    await clients?.close();
  });

  const api = apiCaller(() => gateway.url);
  const call = (
    method: string,
    path: string,
    token: string,
    body?: unknown,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ) => api(method, path, token, body, { headers, ...(signal ? { signal } : {}) });
  const json = async <T>(method: string, path: string, token: string, body?: unknown) => {
    const res = await call(method, path, token, body);
    return { status: res.status, body: (await res.json()) as T };
  };
  const newThread = async (title: string) => {
    const { status, body } = await json<Thread>('POST', '/threads', alice, { title });
    assert.equal(status, 201);
    return body;
  };
  const postMessage = async (threadId: string, content: string, signal?: AbortSignal) => {
    const res = await call(
      'POST',
      `/threads/${threadId}/messages`,
      alice,
      { content },
      { accept: 'text/event-stream' },
      signal,
    );
    assert.equal(res.status, 200, await (res.status === 200 ? '' : res.text()));
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    return res;
  };

  it('runs a run_python tool call as a task of the owner and streams the turn', {
    timeout: 120_000,
  }, async () => {
    const answer = 'Six times seven is 42: the script printed it and returned it.';
    llm.push(
      {
        tool_calls: [
          {
            id: 'call_py_1',
            name: 'run_python',
            arguments: JSON.stringify({ python_script: 'print(6*7)\n6*7' }),
          },
        ],
        usage: { prompt_tokens: 120, completion_tokens: 15, cached_tokens: 20 },
      },
      { content: answer, usage: { prompt_tokens: 200, completion_tokens: 30, cached_tokens: 50 } },
    );
    const before = llm.requests.length;
    const thread = await newThread('six by seven');
    const res = await postMessage(thread.id, 'What is 6*7? Compute it.');
    const all: SseFrame[] = [];
    for await (const f of sseFrames(res)) all.push(f);

    assert.deepEqual(
      eventOrder(all),
      ['turn', 'tool_call', 'tool_result', 'text', 'message'],
      JSON.stringify(all),
    );
    for (const f of all) assert.match(f.id, /^\d+-\d+$/, `${f.event} carries a stream id`);
    for (let i = 1; i < all.length; i++) assert.ok(streamIdAfter(all[i]!.id, all[i - 1]!.id), 'ids increase');

    const started = all[0]!.data as { turn_id: string; thread_id: string; message_id: string };
    assert.equal(started.thread_id, thread.id);
    const toolCall = all.find((f) => f.event === 'tool_call')!.data as ToolCallData;
    assert.equal(toolCall.name, 'run_python');
    assert.equal(toolCall.id, 'call_py_1');
    assert.equal(toolCall.round, 1);
    assert.ok(toolCall.task_id, 'the call ran as a task');
    const taskId = toolCall.task_id;
    const toolResult = all.find((f) => f.event === 'tool_result')!.data as ToolResultData;
    assert.equal(toolResult.tool_call_id, 'call_py_1');
    assert.equal(toolResult.task_id, taskId);
    assert.equal(toolResult.status, 'succeeded', JSON.stringify(toolResult));
    assert.equal(toolResult.truncated, false);
    assert.ok(
      toolResult.result?.result.output.some((line) => line.includes('42')),
      JSON.stringify(toolResult.result),
    );
    assert.equal(toolResult.result?.result.return_value, 42);
    assert.equal(textOf(all), answer);

    const final = all.at(-1)!.data as { message: Message; turn: Turn };
    assert.equal(final.message.role, 'assistant');
    assert.equal(final.message.content, answer);
    assert.equal(final.turn.id, started.turn_id);
    assert.equal(final.turn.status, 'completed');
    assert.equal(final.turn.stop, 'answered');
    assert.equal(final.turn.rounds, 1);
    const usage: TokenUsage = { input_cached: 70, input_noncached: 250, completion: 45, model: 'test-model' };
    assert.deepEqual(final.turn.usage, usage, 'usage summed over both model calls');

    // What the model was sent: the tools (the thread is never the model's to choose), then the result.
    const [first, second] = llm.requests.slice(before);
    assert.ok(first && second, `two model calls, got ${llm.requests.length - before}`);
    assert.equal(llm.requests.length - before, 2);
    const tools = (first.tools ?? []) as {
      type: string;
      function: { name: string; parameters: { properties: Record<string, unknown> } };
    }[];
    const runPython = tools.find((t) => t.function.name === 'run_python');
    assert.ok(runPython, `run_python among ${tools.map((t) => t.function.name).join(', ')}`);
    assert.equal(runPython.type, 'function');
    assert.ok('python_script' in runPython.function.parameters.properties);
    assert.ok(
      !('thread_id' in runPython.function.parameters.properties),
      'thread_id is not a model parameter',
    );
    assert.equal(first.messages.at(-1)?.role, 'user');
    assert.equal(first.messages.at(-1)?.content, 'What is 6*7? Compute it.');
    const assistant = second.messages.find((m) => m.role === 'assistant');
    assert.equal(assistant?.tool_calls?.[0]?.id, 'call_py_1');
    const toolMessage = second.messages.find((m) => m.role === 'tool');
    assert.ok(toolMessage, 'the second call carries the tool result');
    assert.equal(toolMessage.tool_call_id, 'call_py_1');
    assert.match(toolMessage.content, /42/);

    // The task is alice's, and knows its thread; bob cannot see it.
    const record = await json<{ id: string; status: string; task: string }>('GET', `/tasks/${taskId}`, alice);
    assert.equal(record.status, 200);
    assert.equal(record.body.status, 'succeeded');
    assert.equal(record.body.task, 'run_python');
    assert.equal(
      await clients.redis.hget(ns.names.metaKey(taskId), 'thread_id'),
      thread.id,
      'the task meta names the thread',
    );
    const bobsView = await call('GET', `/tasks/${taskId}`, bob);
    assert.equal(bobsView.status, 404);
    await bobsView.arrayBuffer();

    const page = await json<MessageList>('GET', `/threads/${thread.id}/messages`, alice);
    assert.equal(page.status, 200);
    assert.deepEqual(
      page.body.items.map((m) => m.role),
      ['user', 'assistant', 'tool', 'assistant'],
    );
    const [userMsg, callMsg, toolMsg, answerMsg] = page.body.items as [Message, Message, Message, Message];
    assert.equal(userMsg.content, 'What is 6*7? Compute it.');
    assert.equal(callMsg.tool_calls.length, 1);
    assert.equal(callMsg.tool_calls[0]?.name, 'run_python');
    assert.equal(callMsg.tool_calls[0]?.task_id, taskId);
    assert.equal(toolMsg.tool_call_id, 'call_py_1');
    assert.equal(toolMsg.task_id, taskId);
    assert.equal(toolMsg.tool_status, 'succeeded');
    assert.equal(answerMsg.content, answer);
    assert.deepEqual(answerMsg.usage, {
      input_cached: 50,
      input_noncached: 150,
      completion: 30,
      model: 'test-model',
    });
    assert.equal(page.body.turn?.status, 'completed');

    for (const path of [
      `/threads/${thread.id}`,
      `/threads/${thread.id}/messages`,
      `/threads/${thread.id}/turn/events`,
    ]) {
      const denied = await call('GET', path, bob);
      assert.equal(denied.status, 404, path);
      assert.equal(((await denied.json()) as { code: string }).code, 'thread_not_found', path);
    }
    const bobPost = await call('POST', `/threads/${thread.id}/messages`, bob, { content: 'mine now' });
    assert.equal(bobPost.status, 404);
    await bobPost.arrayBuffer();
  });

  it('resumes a turn from Last-Event-ID after the client dropped its stream', {
    timeout: 120_000,
  }, async () => {
    const answer = 'It slept for two seconds.';
    llm.push(
      {
        tool_calls: [
          {
            id: 'call_sleep_1',
            name: 'run_python',
            arguments: JSON.stringify({ python_script: 'import time\ntime.sleep(2)\n"slept"' }),
          },
        ],
      },
      // Held back so the turn outlives the disconnect grace: only the resumed stream keeps it alive.
      { content: answer, delayMs: (GRACE_S - 1) * 1000 },
    );
    const thread = await newThread('sleepy');
    const ac = new AbortController();
    const res = await postMessage(thread.id, 'Sleep a little.', ac.signal);
    const stream = sseFrames(res);
    const had = await framesUntil(stream, (f) => f.event === 'tool_call');
    ac.abort();
    await stream.return(undefined).catch(() => undefined);
    assert.deepEqual(
      had.map((f) => f.event),
      ['turn', 'tool_call'],
    );
    const toolCallFrame = had.at(-1)!;
    const toolCall = toolCallFrame.data as ToolCallData;
    assert.ok(toolCall.task_id);
    const dropped = Date.now();

    // Still running while nobody streams it: the resume is within the grace.
    const mid = await json<Thread>('GET', `/threads/${thread.id}`, alice);
    assert.equal(mid.body.turn?.status, 'running');

    const resumed = await call('GET', `/threads/${thread.id}/turn/events`, alice, undefined, {
      'last-event-id': toolCallFrame.id,
    });
    assert.ok(Date.now() - dropped < GRACE_S * 1000, 'resumed within the grace');
    assert.equal(resumed.status, 200);
    const rest: SseFrame[] = [];
    for await (const f of sseFrames(resumed)) rest.push(f);

    assert.deepEqual(eventOrder(rest), ['tool_result', 'text', 'message'], JSON.stringify(rest));
    const seen = new Set(had.map((f) => f.id));
    for (const f of rest) {
      assert.ok(!seen.has(f.id), `event ${f.id} (${f.event}) was not sent again`);
      assert.ok(streamIdAfter(f.id, toolCallFrame.id), `${f.id} follows the Last-Event-ID`);
    }
    const toolResult = rest[0]!.data as ToolResultData;
    assert.equal(toolResult.tool_call_id, 'call_sleep_1');
    assert.equal(toolResult.task_id, toolCall.task_id);
    assert.equal(toolResult.status, 'succeeded', JSON.stringify(toolResult));
    assert.equal(toolResult.result?.result.return_value, 'slept');
    assert.equal(textOf(rest), answer);
    const final = rest.at(-1)!.data as { message: Message; turn: Turn };
    assert.equal(final.message.content, answer);
    assert.equal(final.turn.status, 'completed', 'the resume kept the turn alive past the grace');
    assert.ok(Date.now() - dropped > GRACE_S * 1000, 'the turn did outlive the grace');

    const page = await json<MessageList>('GET', `/threads/${thread.id}/messages`, alice);
    assert.deepEqual(
      page.body.items.map((m) => [m.role, m.tool_status]),
      [
        ['user', null],
        ['assistant', null],
        ['tool', 'succeeded'],
        ['assistant', null],
      ],
    );
  });
});
