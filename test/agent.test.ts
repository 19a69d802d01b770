// The agent through the real openai SDK: threads and turns on an in-process gateway (real NATS,
// Redis, SQLite and PostgreSQL), a real worker process for echo_q and python_q, and a local
// OpenAI-compatible server whose streamed replies each test scripts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Message, MessageList, Thread, ThreadList, Turn, TurnResult } from '@neuroagent/contracts';
import { createLogger } from '@neuroagent/platform';
import { testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type OpenAiTestServer, startOpenAiTestServer } from '@neuroagent/platform/testing-openai';
import { signDevToken } from '../services/gateway/src/auth/dev-token.ts';
import { createPostgresDatabase } from '../services/gateway/test/postgres-db.ts';
import {
  cleanupTestNamespace,
  startTestGateway,
  type TestGateway,
} from '../services/gateway/test/support.ts';
import { apiCaller } from './support/http.ts';
import { type ServiceProcess, startWorker } from './support/processes.ts';
import { allFrames, eventOrder, framesUntil, type SseFrame, sseFrames, textOf } from './support/sse.ts';

const SECRET = randomBytes(32).toString('base64url');

interface Harness {
  gateway: TestGateway;
  llm: OpenAiTestServer;
  call(
    method: string,
    path: string,
    user: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Response>;
  json<T>(method: string, path: string, user: string, body?: unknown): Promise<{ status: number; body: T }>;
  thread(user: string): Promise<Thread>;
  turn(user: string, threadId: string, content: string): Promise<SseFrame[]>;
  /** Starts a streamed turn; the caller reads as far as it likes, then may drop the connection. */
  open(
    user: string,
    threadId: string,
    content: string,
  ): Promise<{ frames: AsyncGenerator<SseFrame>; drop(): void }>;
  /** Stops the gateway and the model server, then removes the namespace's streams and keys. */
  close(): Promise<void>;
}

async function harness(
  extra: Record<string, string>,
  ns: ReturnType<typeof testNamespace>,
): Promise<Harness> {
  const llm = await startOpenAiTestServer([]);
  const gateway = await startTestGateway(
    ns,
    {
      NEUROAGENT_AUTH__DISABLED: 'false',
      NEUROAGENT_AUTH__JWT_SECRET: SECRET,
      NEUROAGENT_RATE_LIMIT__DISABLED: 'false',
      NEUROAGENT_RATE_LIMIT__KEY_PREFIX: `rl${ns.id}`,
      NEUROAGENT_LLM__BASE_URL: llm.baseUrl,
      NEUROAGENT_LLM__MODEL: 'test-model',
      NEUROAGENT_LLM__MAX_RETRIES: '0',
      NEUROAGENT_AGENT__TOOLS: 'run_python,echo',
      ...extra,
    },
    createLogger('gateway-test', 'silent'),
  );
  const tokens = new Map<string, string>();
  const token = async (user: string) => {
    let t = tokens.get(user);
    if (!t) {
      t = await signDevToken({ secret: SECRET, sub: user, expiresInS: 600 });
      tokens.set(user, t);
    }
    return t;
  };
  const api = apiCaller(() => gateway.url);
  const call = async (
    method: string,
    path: string,
    user: string,
    body?: unknown,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ) => api(method, path, await token(user), body, { headers, ...(signal ? { signal } : {}) });
  const json: Harness['json'] = async <T>(method: string, path: string, user: string, body?: unknown) => {
    const res = await call(method, path, user, body);
    const text = await res.text();
    return { status: res.status, body: (text === '' ? null : JSON.parse(text)) as T };
  };
  return {
    gateway,
    llm,
    call,
    json,
    async thread(user) {
      const res = await json<Thread>('POST', '/threads', user, { title: 'test' });
      assert.equal(res.status, 201);
      return res.body;
    },
    async turn(user, threadId, content) {
      const res = await call('POST', `/threads/${threadId}/messages`, user, { content });
      assert.equal(res.status, 200, await res.clone().text());
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      return allFrames(res);
    },
    async close() {
      await gateway.close();
      await llm.close();
      await cleanupTestNamespace(ns);
    },
    async open(user, threadId, content) {
      const ac = new AbortController();
      const res = await call('POST', `/threads/${threadId}/messages`, user, { content }, {}, ac.signal);
      assert.equal(res.status, 200);
      return { frames: sseFrames(res), drop: () => ac.abort() };
    },
  };
}

/** The task id of the tool_call event a read stopped at. */
function calledTask(seen: SseFrame[]): string {
  const last = seen.at(-1);
  assert.equal(last?.event, 'tool_call');
  return (last.data as { task_id: string }).task_id;
}

const ofType = (frames: SseFrame[], event: string) => frames.filter((f) => f.event === event);
const finalOf = (frames: SseFrame[]) => frames.at(-1) as SseFrame;

async function messagesOf(h: Harness, user: string, threadId: string): Promise<MessageList> {
  const res = await h.json<MessageList>('GET', `/threads/${threadId}/messages`, user);
  assert.equal(res.status, 200);
  return res.body;
}

async function taskRecord(h: Harness, user: string, taskId: string) {
  return h.json<{
    status: string;
    started_at: string | null;
    finished_at: string | null;
    error?: { code: string };
  }>('GET', `/tasks/${taskId}`, user);
}

describe('agent turns (SQLite ledger)', () => {
  const ns = testNamespace('agent');
  let worker: ServiceProcess;
  let h: Harness;

  before(async () => {
    worker = await startWorker(
      workerEnv(ns, {
        TASKS_QUEUES: 'echo_q,python_q',
        TASKS_PYTHON__THREADS: '1',
        TASKS_PYTHON__TIMEOUT_S: '30',
      }),
    );
    h = await harness(
      {
        NEUROAGENT_RATE_LIMIT__CHAT_POINTS: '4',
        NEUROAGENT_RATE_LIMIT__SUBMIT_POINTS: '6',
        NEUROAGENT_LLM__MAX_REPLY_KB: '8',
        NEUROAGENT_AGENT__MAX_TOOL_ROUNDS: '2',
        NEUROAGENT_AGENT__MAX_TOOL_RESULT_KB: '1',
        NEUROAGENT_AGENT__DISCONNECT_GRACE_S: '1.5',
      },
      ns,
    );
  });
  after(async () => {
    await worker?.stop();
    await h?.close();
  });

  it('creates, lists, renames and deletes threads, and hides them from everyone else', async () => {
    const untitled = await h.call('POST', '/threads', 'crud');
    assert.equal(untitled.status, 201);
    const first = (await untitled.json()) as Thread;
    assert.equal(first.title, 'New chat');
    assert.equal(untitled.headers.get('location'), `/threads/${first.id}`);
    const second = await h.thread('crud');

    const page1 = await h.json<ThreadList>('GET', '/threads?limit=1', 'crud');
    assert.deepEqual(
      page1.body.items.map((t) => t.id),
      [second.id],
    );
    assert.ok(page1.body.next_cursor);
    const page2 = await h.json<ThreadList>(
      'GET',
      `/threads?limit=1&cursor=${page1.body.next_cursor}`,
      'crud',
    );
    assert.deepEqual(
      page2.body.items.map((t) => t.id),
      [first.id],
    );
    assert.equal(page2.body.next_cursor, null);

    const renamed = await h.json<Thread>('PATCH', `/threads/${first.id}`, 'crud', { title: 'Renamed' });
    assert.equal(renamed.body.title, 'Renamed');
    assert.equal((await h.json<Thread>('GET', `/threads/${first.id}`, 'crud')).body.title, 'Renamed');
    assert.equal((await h.json('PATCH', `/threads/${first.id}`, 'crud', { title: '' })).status, 400);

    // Another user: every route answers 404, exactly as for an unknown id, and lists nothing.
    for (const [method, path, body] of [
      ['GET', `/threads/${first.id}`, undefined],
      ['PATCH', `/threads/${first.id}`, { title: 'mine now' }],
      ['DELETE', `/threads/${first.id}`, undefined],
      ['GET', `/threads/${first.id}/messages`, undefined],
      ['POST', `/threads/${first.id}/messages`, { content: 'hello' }],
      ['DELETE', `/threads/${first.id}/turn`, undefined],
      ['GET', `/threads/${first.id}/turn/events`, undefined],
    ] as const) {
      const res = await h.json<{ code: string }>(method, path, 'intruder', body);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.body.code, 'thread_not_found', `${method} ${path}`);
    }
    assert.deepEqual((await h.json<ThreadList>('GET', '/threads', 'intruder')).body.items, []);
    assert.equal(h.llm.requests.length, 0, 'no model call for a thread that is not the caller’s');

    assert.equal((await h.call('DELETE', `/threads/${first.id}`, 'crud')).status, 204);
    assert.equal((await h.json('GET', `/threads/${first.id}`, 'crud')).status, 404);
    assert.equal((await h.json('GET', '/threads?cursor=not%20a%20cursor', 'crud')).status, 400);
  });

  it('streams a text-only turn and stores it with its token usage', async () => {
    const thread = await h.thread('text');
    h.llm.push({
      content: 'Hello from the model.',
      usage: { prompt_tokens: 50, completion_tokens: 7, cached_tokens: 20 },
    });
    const frames = await h.turn('text', thread.id, 'Say hello');
    assert.deepEqual([...new Set(frames.map((f) => f.event))], ['turn', 'text', 'message']);
    assert.ok(ofType(frames, 'text').length >= 2, 'the text arrives in pieces');
    assert.equal(textOf(frames), 'Hello from the model.');
    const final = finalOf(frames).data as { message: Message; turn: Turn };
    assert.equal(final.message.content, 'Hello from the model.');
    assert.deepEqual(final.message.usage, {
      input_cached: 20,
      input_noncached: 30,
      completion: 7,
      model: 'test-model',
    });
    assert.equal(final.turn.status, 'completed');
    assert.equal(final.turn.stop, 'answered');
    assert.deepEqual(final.turn.usage, final.message.usage);
    // Ids are Redis stream ids, increasing: what Last-Event-ID resumes from.
    for (const f of frames) assert.match(f.id, /^\d+-\d+$/);

    const request = h.llm.requests.at(-1);
    assert.equal(request?.stream, true);
    assert.deepEqual(request?.stream_options, { include_usage: true });
    assert.equal(request?.messages[0]?.role, 'system');
    assert.deepEqual(request?.messages.slice(1), [{ role: 'user', content: 'Say hello' }]);
    const tools = (request?.tools ?? []) as {
      function: { name: string; parameters: { properties: object } };
    }[];
    assert.deepEqual(tools.map((t) => t.function.name).sort(), ['echo', 'run_python']);
    const runPython = tools.find((t) => t.function.name === 'run_python');
    assert.deepEqual(Object.keys(runPython?.function.parameters.properties ?? {}), ['python_script']);

    const stored = await messagesOf(h, 'text', thread.id);
    assert.deepEqual(
      stored.items.map((m) => [m.seq, m.role, m.content]),
      [
        [1, 'user', 'Say hello'],
        [2, 'assistant', 'Hello from the model.'],
      ],
    );
    assert.deepEqual(stored.items[1]?.usage, final.message.usage);
    assert.equal(stored.turn?.status, 'completed');
    assert.equal((await h.json<Thread>('GET', `/threads/${thread.id}`, 'text')).body.turn?.id, final.turn.id);
  });

  it('runs a run_python call as a task of the caller and feeds its result back', async () => {
    const thread = await h.thread('python');
    h.llm.push(
      {
        tool_calls: [{ name: 'run_python', arguments: JSON.stringify({ python_script: 'print(6*7)\n6*7' }) }],
      },
      { content: 'The answer is 42.' },
    );
    const frames = await h.turn('python', thread.id, 'What is 6 times 7?');
    assert.deepEqual(eventOrder(frames), ['turn', 'tool_call', 'tool_result', 'text', 'message']);
    const call = ofType(frames, 'tool_call')[0]?.data as { name: string; task_id: string; round: number };
    assert.equal(call.name, 'run_python');
    assert.equal(call.round, 1);
    const result = ofType(frames, 'tool_result')[0]?.data as {
      status: string;
      task_id: string;
      result: { result: { output: string[]; return_value: unknown } };
    };
    assert.equal(result.status, 'succeeded');
    assert.equal(result.task_id, call.task_id);
    assert.deepEqual(result.result.result.output, ['42']);
    assert.equal(result.result.result.return_value, 42);

    // The model's second call has the tool result, answering the call by its id.
    const second = h.llm.requests.at(-1);
    const toolMessage = second?.messages.at(-1);
    const assistantCall = second?.messages.at(-2)?.tool_calls?.[0];
    assert.equal(toolMessage?.role, 'tool');
    assert.equal(toolMessage?.tool_call_id, assistantCall?.id);
    assert.match(String(toolMessage?.content), /"return_value":42/);

    // The task is the caller's, in the ledger, with the thread's id: no one else sees it.
    const record = await taskRecord(h, 'python', call.task_id);
    assert.equal(record.status, 200);
    assert.equal(record.body.status, 'succeeded');
    assert.equal((await taskRecord(h, 'someone-else', call.task_id)).status, 404);
    const listed = await h.json<{ items: { id: string; task: string }[] }>('GET', '/tasks', 'python');
    assert.deepEqual(
      listed.body.items.map((t) => [t.id, t.task]),
      [[call.task_id, 'run_python']],
    );

    const stored = (await messagesOf(h, 'python', thread.id)).items;
    assert.deepEqual(
      stored.map((m) => m.role),
      ['user', 'assistant', 'tool', 'assistant'],
    );
    assert.equal(stored[1]?.tool_calls[0]?.task_id, call.task_id);
    assert.equal(stored[2]?.task_id, call.task_id);
    assert.equal(stored[2]?.tool_status, 'succeeded');
    assert.equal(stored[3]?.content, 'The answer is 42.');
    const turn = (finalOf(frames).data as { turn: Turn }).turn;
    assert.equal(turn.rounds, 1);
    assert.deepEqual(turn.usage, {
      input_cached: 0,
      input_noncached: 200,
      completion: 40,
      model: 'test-model',
    });
  });

  it('runs parallel tool calls concurrently', async () => {
    const thread = await h.thread('parallel');
    const echo = (payload: string) => ({
      name: 'echo',
      arguments: JSON.stringify({ payload, delay_ms: 1500 }),
    });
    h.llm.push({ tool_calls: [echo('a'), echo('b')] }, { content: 'both came back' });
    const frames = await h.turn('parallel', thread.id, 'echo twice');
    const results = ofType(frames, 'tool_result').map(
      (f) => f.data as { task_id: string; status: string; result: { payload: string } },
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['succeeded', 'succeeded'],
    );
    assert.deepEqual(results.map((r) => r.result.payload).sort(), ['a', 'b']);
    const [a, b] = await Promise.all(results.map((r) => taskRecord(h, 'parallel', r.task_id)));
    // Each task started before the other finished: they overlapped.
    assert.ok(Date.parse(String(a?.body.started_at)) < Date.parse(String(b?.body.finished_at)));
    assert.ok(Date.parse(String(b?.body.started_at)) < Date.parse(String(a?.body.finished_at)));
    const second = h.llm.requests.at(-1);
    assert.deepEqual(
      second?.messages.slice(-2).map((m) => m.role),
      ['tool', 'tool'],
    );
  });

  it('feeds tool errors back to the model, which then answers', async () => {
    const thread = await h.thread('errors');
    h.llm.push(
      {
        tool_calls: [
          { name: 'run_python', arguments: '{"python_script": 5}' },
          { name: 'run_python', arguments: JSON.stringify({ python_script: '1/0' }) },
          { name: 'rm_rf', arguments: '{}' },
          { name: 'echo', arguments: '{not json' },
        ],
      },
      { content: 'Two of those failed.' },
    );
    const frames = await h.turn('errors', thread.id, 'try things');
    const byCall = new Map(
      ofType(frames, 'tool_result').map((f) => {
        const d = f.data as {
          tool_call_id: string;
          status: string;
          task_id: string | null;
          error?: { code: string };
          result?: { result: { status: string; error: { name: string } } };
        };
        return [d.tool_call_id, d];
      }),
    );
    const calls = ofType(frames, 'tool_call').map((f) => f.data as { id: string; task_id: string | null });
    const [badArgs, pyError, unknown, notJson] = calls.map((c) => byCall.get(c.id));
    assert.equal(badArgs?.status, 'rejected');
    assert.equal(badArgs?.error?.code, 'invalid_arguments');
    assert.equal(badArgs?.task_id, null, 'a refused call submits no task');
    assert.equal(pyError?.status, 'succeeded', 'a Python exception is a result, as in POST /tasks');
    assert.equal(pyError?.result?.result.status, 'error');
    assert.equal(pyError?.result?.result.error.name, 'ZeroDivisionError');
    assert.equal(unknown?.error?.code, 'unknown_tool');
    assert.equal(notJson?.error?.code, 'invalid_arguments');

    const fed =
      h.llm.requests
        .at(-1)
        ?.messages.filter((m) => m.role === 'tool')
        .map((m) => String(m.content)) ?? [];
    assert.equal(fed.length, 4);
    assert.match(fed.join('\n'), /invalid_arguments/);
    assert.match(fed.join('\n'), /ZeroDivisionError/);
    assert.match(fed.join('\n'), /unknown_tool/);
    assert.equal((finalOf(frames).data as { message: Message }).message.content, 'Two of those failed.');
    assert.equal((await h.json<{ items: unknown[] }>('GET', '/tasks', 'errors')).body.items.length, 1);
  });

  it('stops offering tools after NEUROAGENT_AGENT__MAX_TOOL_ROUNDS rounds and makes the model answer', async () => {
    const thread = await h.thread('rounds');
    const echo = { tool_calls: [{ name: 'echo', arguments: '{"payload":1}' }] };
    h.llm.push(echo, echo, {
      content: 'Out of tool budget: here is what I have.',
      tool_calls: [{ name: 'echo', arguments: '{}' }],
    });
    const before = h.llm.requests.length;
    const frames = await h.turn('rounds', thread.id, 'loop forever');
    const requests = h.llm.requests.slice(before);
    assert.equal(requests.length, 3);
    assert.ok(requests[0]?.tools && requests[1]?.tools);
    assert.equal(requests[2]?.tools, undefined, 'the last call offers no tools');
    assert.equal(ofType(frames, 'tool_call').length, 2, 'a tool call in the forced answer is not run');
    const { turn, message } = finalOf(frames).data as { turn: Turn; message: Message };
    assert.equal(turn.stop, 'max_tool_rounds');
    assert.equal(turn.rounds, 2);
    assert.equal(message.content, 'Out of tool budget: here is what I have.');
    assert.deepEqual(message.tool_calls, []);
  });

  it('cuts a long tool result fed back to the model and marks it', async () => {
    const thread = await h.thread('trunc');
    const payload = 'é'.repeat(3000); // 6000 bytes of UTF-8, over the 1 KiB cap
    h.llm.push(
      { tool_calls: [{ name: 'echo', arguments: JSON.stringify({ payload }) }] },
      { content: 'long' },
    );
    const frames = await h.turn('trunc', thread.id, 'echo a lot');
    const result = ofType(frames, 'tool_result')[0]?.data as {
      truncated: boolean;
      result: { payload: string };
    };
    assert.equal(result.truncated, true);
    assert.equal(result.result.payload, payload, 'the event carries the whole result');
    const fed = String(h.llm.requests.at(-1)?.messages.at(-1)?.content);
    assert.ok(Buffer.byteLength(fed) <= 1024, 'the marker fits in the cap');
    assert.match(fed, /\[truncated by the gateway: \d+ of \d+ bytes shown\]$/);
    assert.ok(!fed.includes('\uFFFD'), 'never cut inside a character');
    const stored = (await messagesOf(h, 'trunc', thread.id)).items.find((m) => m.role === 'tool');
    assert.equal(stored?.truncated, true);
    assert.equal(stored?.content, fed);
  });

  it('answers the finished turn as JSON with Accept: application/json', async () => {
    const thread = await h.thread('json');
    h.llm.push({ content: 'plain' });
    const res = await h.call(
      'POST',
      `/threads/${thread.id}/messages`,
      'json',
      { content: 'hi' },
      { accept: 'application/json' },
    );
    assert.equal(res.status, 200);
    const body = (await res.json()) as TurnResult;
    assert.equal(res.headers.get('x-turn-id'), body.turn.id);
    assert.equal(body.turn.status, 'completed');
    assert.deepEqual(
      body.messages.map((m) => [m.role, m.content]),
      [
        ['user', 'hi'],
        ['assistant', 'plain'],
      ],
    );
  });

  it('fails the turn cleanly when the model server errors, keeping the user message only', async () => {
    const thread = await h.thread('llmerror');
    h.llm.push({ status: 500 });
    const frames = await h.turn('llmerror', thread.id, 'hello?');
    assert.deepEqual(
      frames.map((f) => f.event),
      ['turn', 'error'],
    );
    const { turn, error } = finalOf(frames).data as { turn: Turn; error: { code: string } };
    assert.equal(error.code, 'llm_error');
    assert.equal(turn.status, 'failed');
    assert.deepEqual(
      (await messagesOf(h, 'llmerror', thread.id)).items.map((m) => m.role),
      ['user'],
    );
  });

  it('stops a model that streams more than NEUROAGENT_LLM__MAX_REPLY_KB', async () => {
    const thread = await h.thread('huge');
    h.llm.push({ content: 'x'.repeat(20_000), chunks: Array.from({ length: 20 }, () => 'x'.repeat(1000)) });
    const frames = await h.turn('huge', thread.id, 'talk a lot');
    const { error } = finalOf(frames).data as { error: { code: string } };
    assert.equal(error.code, 'llm_reply_too_large');
    assert.deepEqual(
      (await messagesOf(h, 'huge', thread.id)).items.map((m) => m.role),
      ['user'],
      'nothing half-written',
    );
  });

  it('answers 409 to a second turn while one runs, and DELETE /threads/{id}/turn cancels it and its task', async () => {
    const thread = await h.thread('cancel');
    h.llm.push({ tool_calls: [{ name: 'echo', arguments: '{"delay_ms":60000}' }] });
    const { frames } = await h.open('cancel', thread.id, 'wait');
    const seen = await framesUntil(frames, (f) => f.event === 'tool_call');
    const taskId = calledTask(seen);
    await waitFor(
      async () => (await taskRecord(h, 'cancel', taskId)).body.status === 'running',
      20_000,
      'task running',
    );

    const second = await h.json<{ code: string }>('POST', `/threads/${thread.id}/messages`, 'cancel', {
      content: 'again',
    });
    assert.equal(second.status, 409);
    assert.equal(second.body.code, 'turn_in_progress');
    assert.equal(
      (await h.json<{ code: string }>('DELETE', `/threads/${thread.id}`, 'cancel')).body.code,
      'turn_in_progress',
    );

    const cancelled = await h.json<Turn>('DELETE', `/threads/${thread.id}/turn`, 'cancel');
    assert.equal(cancelled.status, 202);
    const rest: SseFrame[] = [];
    for await (const f of frames) rest.push(f);
    assert.deepEqual(
      rest.map((f) => f.event),
      ['tool_result', 'error'],
    );
    assert.equal((finalOf(rest).data as { turn: Turn }).turn.status, 'cancelled');
    assert.equal((finalOf(rest).data as { error: { code: string } }).error.code, 'cancelled');
    await waitFor(
      async () => (await taskRecord(h, 'cancel', taskId)).body.status === 'cancelled',
      20_000,
      'task cancelled',
    );

    const stored = await messagesOf(h, 'cancel', thread.id);
    assert.deepEqual(
      stored.items.map((m) => [m.role, m.tool_status]),
      [
        ['user', null],
        ['assistant', null],
        ['tool', 'cancelled'],
      ],
    );
    assert.equal(stored.turn?.status, 'cancelled');
    assert.equal(
      (await h.json<{ code: string }>('DELETE', `/threads/${thread.id}/turn`, 'cancel')).body.code,
      'no_turn_running',
    );
  });

  it('cancels the turn and its running task when the client disconnects and does not come back', async () => {
    const thread = await h.thread('gone');
    h.llm.push({ tool_calls: [{ name: 'echo', arguments: '{"delay_ms":60000}' }] });
    const turn = await h.open('gone', thread.id, 'wait for me');
    const seen = await framesUntil(turn.frames, (f) => f.event === 'tool_call');
    const taskId = calledTask(seen);
    await waitFor(
      async () => (await taskRecord(h, 'gone', taskId)).body.status === 'running',
      20_000,
      'task running',
    );
    turn.drop();
    await waitFor(
      async () => (await messagesOf(h, 'gone', thread.id)).turn?.status === 'cancelled',
      20_000,
      'turn cancelled',
    );
    const stored = await messagesOf(h, 'gone', thread.id);
    assert.equal(stored.turn?.error?.code, 'client_gone');
    assert.deepEqual(
      stored.items.map((m) => m.role),
      ['user', 'assistant', 'tool'],
    );
    await waitFor(
      async () => (await taskRecord(h, 'gone', taskId)).body.status === 'cancelled',
      20_000,
      'task cancelled',
    );
  });

  it('drops the half-streamed text of a turn cancelled mid-reply', async () => {
    const thread = await h.thread('midreply');
    h.llm.push({ chunks: ['Partial ', 'answer '], hang: true });
    const turn = await h.open('midreply', thread.id, 'start talking');
    await framesUntil(turn.frames, (f) => f.event === 'text');
    const abortedBefore = h.llm.aborted;
    turn.drop();
    await waitFor(
      async () => (await messagesOf(h, 'midreply', thread.id)).turn?.status === 'cancelled',
      20_000,
      'turn cancelled',
    );
    await waitFor(async () => h.llm.aborted > abortedBefore, 5000, 'the model stream closed');
    assert.deepEqual(
      (await messagesOf(h, 'midreply', thread.id)).items.map((m) => m.role),
      ['user'],
    );
  });

  it('resumes a turn from Last-Event-ID after a dropped connection, and the resumed stream keeps it alive', async () => {
    const thread = await h.thread('resume');
    // The tool outlasts the 1.5 s grace: the turn lives on only because the resumed stream watches it.
    h.llm.push(
      { tool_calls: [{ name: 'echo', arguments: '{"delay_ms":4000}' }] },
      { content: 'resumed fine' },
    );
    const turn = await h.open('resume', thread.id, 'go');
    const seen = await framesUntil(turn.frames, (f) => f.event === 'tool_call');
    turn.drop();
    const resumed = await h.call('GET', `/threads/${thread.id}/turn/events`, 'resume', undefined, {
      'last-event-id': seen.at(-1)?.id ?? '',
    });
    assert.equal(resumed.status, 200);
    const rest = await allFrames(resumed);
    assert.deepEqual([...new Set(rest.map((f) => f.event))], ['tool_result', 'text', 'message']);
    const seenIds = new Set(seen.map((f) => f.id));
    assert.ok(
      rest.every((f) => !seenIds.has(f.id)),
      'nothing is sent twice',
    );
    assert.equal((finalOf(rest).data as { turn: Turn }).turn.status, 'completed');
    // A finished turn's events stay readable from the start for a late reader.
    const replay = await allFrames(await h.call('GET', `/threads/${thread.id}/turn/events`, 'resume'));
    assert.deepEqual(
      replay.map((f) => f.id),
      [...seen.map((f) => f.id), ...rest.map((f) => f.id)],
    );
  });

  it('limits chat turns per user (NEUROAGENT_RATE_LIMIT__CHAT_POINTS) and counts tool calls against submit', async () => {
    const thread = await h.thread('limited');
    for (let i = 0; i < 4; i++) {
      h.llm.push({ content: `reply ${i}` });
      const res = await h.call(
        'POST',
        `/threads/${thread.id}/messages`,
        'limited',
        { content: `q${i}` },
        { accept: 'application/json' },
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-ratelimit-limit'), '4');
      assert.equal(res.headers.get('x-ratelimit-remaining'), String(3 - i));
      await res.arrayBuffer();
    }
    const before = h.llm.requests.length;
    const over = await h.call('POST', `/threads/${thread.id}/messages`, 'limited', { content: 'one more' });
    assert.equal(over.status, 429);
    assert.equal(((await over.json()) as { code: string }).code, 'rate_limited');
    assert.ok(Number(over.headers.get('retry-after')) > 0);
    assert.equal(h.llm.requests.length, before, 'the model is not called over the limit');
    const budgets = await h.json<Record<string, { limit: number; remaining: number; reset_in_s: number }>>(
      'GET',
      '/rate-limit',
      'limited',
    );
    assert.deepEqual(budgets.body.chat, {
      limit: 4,
      remaining: 0,
      reset_in_s: budgets.body.chat?.reset_in_s,
    });

    // Seven tool calls in one reply against a submit budget of six: the seventh is refused.
    const spender = await h.thread('spender');
    h.llm.push(
      {
        tool_calls: Array.from({ length: 7 }, (_, i) => ({
          name: 'echo',
          arguments: JSON.stringify({ payload: i }),
        })),
      },
      { content: 'done' },
    );
    const frames = await h.turn('spender', spender.id, 'spend');
    const statuses = ofType(frames, 'tool_result').map(
      (f) => f.data as { status: string; error?: { code: string } },
    );
    assert.equal(statuses.filter((s) => s.status === 'succeeded').length, 6);
    assert.deepEqual(
      statuses.filter((s) => s.status === 'rejected').map((s) => s.error?.code),
      ['rate_limited'],
    );
  });

  it('refuses a user message over NEUROAGENT_AGENT__MAX_MESSAGE_KB before calling the model', async () => {
    const thread = await h.thread('big');
    const res = await h.json<{ code: string }>('POST', `/threads/${thread.id}/messages`, 'big', {
      content: 'x'.repeat(33 * 1024),
    });
    assert.equal(res.status, 413);
    assert.equal(res.body.code, 'message_too_large');
    assert.deepEqual((await messagesOf(h, 'big', thread.id)).items, []);
  });
});

describe('agent turns (PostgreSQL ledger)', () => {
  const ns = testNamespace('agentpg');
  let worker: ServiceProcess;
  let h: Harness;
  let db: { url: string; drop(): Promise<void> };

  before(async () => {
    db = await createPostgresDatabase('agent');
    worker = await startWorker(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
    h = await harness(
      {
        NEUROAGENT_DB__URL: db.url,
        NEUROAGENT_AGENT__DISCONNECT_GRACE_S: '0',
        NEUROAGENT_AGENT__TOOL_TIMEOUT_S: '1',
        NEUROAGENT_AGENT__TURN_TIMEOUT_S: '4',
      },
      ns,
    );
  });
  after(async () => {
    await worker?.stop();
    await h?.close();
    await db?.drop();
  });

  it('stores threads, a tool turn and its messages, owned by the caller', async () => {
    const thread = await h.thread('pg');
    h.llm.push(
      {
        tool_calls: [{ name: 'echo', arguments: '{"payload":"pg"}' }],
        usage: { prompt_tokens: 10, completion_tokens: 2, cached_tokens: 4 },
      },
      { content: 'stored in PostgreSQL' },
    );
    const frames = await h.turn('pg', thread.id, 'hello pg');
    assert.equal(finalOf(frames).event, 'message');
    const stored = await messagesOf(h, 'pg', thread.id);
    assert.deepEqual(
      stored.items.map((m) => [m.seq, m.role]),
      [
        [1, 'user'],
        [2, 'assistant'],
        [3, 'tool'],
        [4, 'assistant'],
      ],
    );
    assert.deepEqual(stored.items[1]?.usage, {
      input_cached: 4,
      input_noncached: 6,
      completion: 2,
      model: 'test-model',
    });
    assert.equal(stored.items[2]?.tool_status, 'succeeded');
    const page = await h.json<MessageList>('GET', `/threads/${thread.id}/messages?limit=2&cursor=2`, 'pg');
    assert.deepEqual(
      page.body.items.map((m) => m.seq),
      [3, 4],
    );
    assert.equal((await h.json('GET', `/threads/${thread.id}/messages`, 'other')).status, 404);
    assert.equal(
      (await h.json<ThreadList>('GET', '/threads', 'pg')).body.items[0]?.turn?.status,
      'completed',
    );
  });

  it('cancels at once on disconnect with a grace of 0', async () => {
    const thread = await h.thread('pg-gone');
    h.llm.push({ tool_calls: [{ name: 'echo', arguments: '{"delay_ms":60000}' }] });
    const turn = await h.open('pg-gone', thread.id, 'wait');
    const seen = await framesUntil(turn.frames, (f) => f.event === 'tool_call');
    const taskId = calledTask(seen);
    turn.drop();
    await waitFor(
      async () => (await messagesOf(h, 'pg-gone', thread.id)).turn?.status === 'cancelled',
      20_000,
      'turn cancelled',
    );
    await waitFor(
      async () => (await taskRecord(h, 'pg-gone', taskId)).body.status === 'cancelled',
      20_000,
      'task cancelled',
    );
    assert.deepEqual(
      (await messagesOf(h, 'pg-gone', thread.id)).items.map((m) => m.role),
      ['user', 'assistant', 'tool'],
    );
    // The thread is free again, and deletable.
    assert.equal((await h.call('DELETE', `/threads/${thread.id}`, 'pg-gone')).status, 204);
  });

  it('cancels a tool task that outlasts NEUROAGENT_AGENT__TOOL_TIMEOUT_S and tells the model', async () => {
    const thread = await h.thread('pg-slow');
    h.llm.push(
      { tool_calls: [{ name: 'echo', arguments: '{"delay_ms":60000}' }] },
      { content: 'the tool was too slow' },
    );
    const frames = await h.turn('pg-slow', thread.id, 'be slow');
    const result = ofType(frames, 'tool_result')[0]?.data as {
      task_id: string;
      status: string;
      error: { code: string };
    };
    assert.equal(result.status, 'cancelled');
    assert.equal(result.error.code, 'tool_timeout');
    assert.match(String(h.llm.requests.at(-1)?.messages.at(-1)?.content), /tool_timeout/);
    assert.equal((finalOf(frames).data as { turn: Turn }).turn.status, 'completed');
    await waitFor(
      async () => (await taskRecord(h, 'pg-slow', result.task_id)).body.status === 'cancelled',
      20_000,
      'task cancelled',
    );
  });

  it('fails a turn that outlasts NEUROAGENT_AGENT__TURN_TIMEOUT_S, dropping its half-streamed text', async () => {
    const thread = await h.thread('pg-long');
    h.llm.push({ chunks: ['thinking ', 'very '], hang: true });
    const frames = await h.turn('pg-long', thread.id, 'never finish');
    const { turn, error } = finalOf(frames).data as { turn: Turn; error: { code: string } };
    assert.equal(error.code, 'turn_timeout');
    assert.equal(turn.status, 'failed');
    assert.deepEqual(
      (await messagesOf(h, 'pg-long', thread.id)).items.map((m) => m.role),
      ['user'],
    );
  });

  // Last: it shuts the suite's gateway down.
  it('ends running turns as failed gateway_shutdown when the gateway stops, cancelling their tasks', async () => {
    const thread = await h.thread('pg-shutdown');
    h.llm.push({ tool_calls: [{ name: 'echo', arguments: '{"delay_ms":60000}' }] });
    const { frames } = await h.open('pg-shutdown', thread.id, 'wait');
    const seen = await framesUntil(frames, (f) => f.event === 'tool_call');
    const taskId = calledTask(seen);
    await h.gateway.runtime.releaseWaiters();
    const rest: SseFrame[] = [];
    for await (const f of frames) rest.push(f);
    const final = finalOf(rest).data as { turn: Turn; error: { code: string } };
    assert.equal(final.error.code, 'gateway_shutdown');
    assert.equal(final.turn.status, 'failed');
    await waitFor(
      async () => (await taskRecord(h, 'pg-shutdown', taskId)).body.status === 'cancelled',
      20_000,
      'task cancelled',
    );
    assert.deepEqual(
      (await messagesOf(h, 'pg-shutdown', thread.id)).items.map((m) => [m.role, m.tool_status]),
      [
        ['user', null],
        ['assistant', null],
        ['tool', 'cancelled'],
      ],
    );
  });
});
