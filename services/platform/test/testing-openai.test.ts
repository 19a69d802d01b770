// testing-openai.ts: the local chat completions server must satisfy the real openai SDK in both
// protocols (one JSON completion, and server-sent chunks), because service tests trust it to
// stand in for the real API: content, parallel tool calls, usage, errors, and disconnects.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { type OpenAiTestServer, type ScriptedReply, startOpenAiTestServer } from '../src/testing-openai.ts';

const MODEL = 'gpt-test';
const USER = [{ role: 'user' as const, content: 'hello' }];

let server: OpenAiTestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function clientFor(script: Parameters<typeof startOpenAiTestServer>[0]) {
  server = await startOpenAiTestServer(script);
  return new OpenAI({ apiKey: 'sk-test', baseURL: server.baseUrl, maxRetries: 0 });
}

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** Resolves once `ready()` holds: the server learns of a disconnect a moment after the client. */
async function until(ready: () => boolean, what: string) {
  for (let i = 0; i < 200 && !ready(); i++) await sleep(5);
  assert.ok(ready(), what);
}

const weather = { id: 'call_weather', name: 'get_weather', arguments: '{"city":"Geneva","unit":"celsius"}' };
const time = { name: 'get_time', arguments: '{"zone":"Europe/Zurich"}' };

describe('OpenAI test server, non-streaming', () => {
  it('answers the scripted content with usage and records the request and its key', async () => {
    const client = await clientFor([
      { content: 'first', usage: { prompt_tokens: 7, completion_tokens: 3, cached_tokens: 5 } },
      { content: 'second' },
    ]);
    const first = await client.chat.completions.create({ model: MODEL, messages: USER });
    assert.equal(first.choices[0]?.message.content, 'first');
    assert.equal(first.choices[0]?.finish_reason, 'stop');
    assert.equal(first.model, MODEL);
    assert.deepEqual(first.usage, {
      prompt_tokens: 7,
      completion_tokens: 3,
      total_tokens: 10,
      prompt_tokens_details: { cached_tokens: 5 },
    });
    const second = await client.chat.completions.create({ model: MODEL, messages: USER });
    assert.equal(second.choices[0]?.message.content, 'second');
    assert.equal(server!.requests.length, 2);
    assert.deepEqual(server!.requests[0]?.messages, USER);
    assert.deepEqual(server!.authorizations, ['Bearer sk-test', 'Bearer sk-test']);
  });

  it('returns tool calls with default ids and finish_reason tool_calls', async () => {
    const client = await clientFor([{ tool_calls: [weather, time] }]);
    const reply = await client.chat.completions.create({ model: MODEL, messages: USER });
    const choice = reply.choices[0]!;
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.deepEqual(choice.message.tool_calls, [
      {
        id: 'call_weather',
        type: 'function',
        function: { name: weather.name, arguments: weather.arguments },
      },
      { id: 'call_1', type: 'function', function: { name: time.name, arguments: time.arguments } },
    ]);
  });

  it('answers a refusal, a 400 once the script is exhausted, and 404 off the route', async () => {
    const client = await clientFor([{ refusal: 'I cannot' }]);
    const refused = await client.chat.completions.create({ model: MODEL, messages: USER });
    assert.equal(refused.choices[0]?.message.refusal, 'I cannot');
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: USER }), { status: 400 });
    const other = await fetch(`${server!.baseUrl}/models`);
    assert.equal(other.status, 404);
  });

  it('surfaces a scripted HTTP error as an APIError with its status and code', async () => {
    const client = await clientFor([{ status: 500 }, { status: 429, code: 'insufficient_quota' }]);
    const failed = await client.chat.completions.create({ model: MODEL, messages: USER }).catch((e) => e);
    assert.ok(failed instanceof APIError);
    assert.equal(failed.status, 500);
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: USER }), {
      status: 429,
      code: 'insufficient_quota',
    });
    assert.equal(server!.requests.length, 2, 'maxRetries: 0 sends each request once');
  });
});

describe('OpenAI test server, streaming', () => {
  it('streams content as several deltas over text/event-stream', async () => {
    const content = 'The quick brown fox jumps over the lazy dog.';
    const client = await clientFor([{ content }, { content: 'ignored', chunks: ['ab', 'cd'] }]);
    const { data, response } = await client.chat.completions
      .create({ model: MODEL, messages: USER, stream: true })
      .withResponse();
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const chunks = await collect(data);
    const deltas = chunks.map((c) => c.choices[0]?.delta.content).filter((d) => d);
    assert.ok(deltas.length > 3, `content came in ${deltas.length} deltas`);
    assert.equal(deltas.join(''), content);
    assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant');
    assert.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'stop');
    assert.ok(
      chunks.every((c) => c.usage === undefined),
      'no usage without include_usage',
    );

    const split = await collect(
      await client.chat.completions.create({ model: MODEL, messages: USER, stream: true }),
    );
    assert.deepEqual(
      split.map((c) => c.choices[0]?.delta.content).filter((d) => d),
      ['ab', 'cd'],
    );
  });

  it('streams two parallel tool calls that reassemble into names, ids and arguments', async () => {
    const client = await clientFor([{ tool_calls: [weather, time] }, { tool_calls: [weather, time] }]);
    const chunks = await collect(
      await client.chat.completions.create({ model: MODEL, messages: USER, stream: true }),
    );
    const calls: { id?: string; name: string; arguments: string; pieces: number }[] = [];
    for (const delta of chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])) {
      if (delta.id !== undefined) {
        assert.equal(delta.type, 'function');
        assert.equal(delta.function?.arguments, '', 'the opening chunk carries no arguments');
        calls[delta.index] = { id: delta.id, name: delta.function?.name ?? '', arguments: '', pieces: 0 };
        continue;
      }
      assert.deepEqual(Object.keys(delta).sort(), ['function', 'index']);
      const call = calls[delta.index]!;
      call.arguments += delta.function?.arguments ?? '';
      call.pieces += 1;
    }
    assert.deepEqual(
      calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
      [weather, { id: 'call_1', ...time }],
    );
    assert.ok(
      calls.every((c) => c.pieces >= 2),
      'arguments arrive in two pieces or more',
    );
    assert.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'tool_calls');

    // The SDK's own accumulator agrees; the second reply gets fresh default ids.
    const final = await client.chat.completions
      .stream({ model: MODEL, messages: USER })
      .finalChatCompletion();
    const toolCalls = final.choices[0]?.message.tool_calls ?? [];
    assert.deepEqual(
      toolCalls.map((c) => (c.type === 'function' ? [c.id, c.function.name, c.function.arguments] : [])),
      [
        [weather.id, weather.name, weather.arguments],
        ['call_2', time.name, time.arguments],
      ],
    );
  });

  it('ends with a usage chunk with no choices when include_usage is asked', async () => {
    const client = await clientFor([
      { content: 'counted', usage: { prompt_tokens: 40, completion_tokens: 2, cached_tokens: 32 } },
    ]);
    const chunks = await collect(
      await client.chat.completions.create({
        model: MODEL,
        messages: USER,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, {
      prompt_tokens: 40,
      completion_tokens: 2,
      total_tokens: 42,
      prompt_tokens_details: { cached_tokens: 32 },
    });
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
    assert.equal(server!.requests[0]?.stream_options?.include_usage, true);
  });

  it('waits delayMs before answering and chunkDelayMs between chunks', async () => {
    const client = await clientFor([
      { content: 'slow', delayMs: 60 },
      { chunks: ['a', 'b', 'c'], chunkDelayMs: 25 },
    ]);
    let started = performance.now();
    await client.chat.completions.create({ model: MODEL, messages: USER });
    assert.ok(performance.now() - started >= 55, 'delayMs holds the reply back');
    started = performance.now();
    await collect(await client.chat.completions.create({ model: MODEL, messages: USER, stream: true }));
    assert.ok(performance.now() - started >= 100, 'five chunks after the first, 25 ms apart');
  });
});

describe('OpenAI test server, disconnects and scripts', () => {
  it('counts a hanging response the client aborts, streaming or not', async () => {
    const client = await clientFor([
      { hang: true },
      { content: 'partial answer', hang: true },
      { content: 'after' },
    ]);
    const plain = new AbortController();
    const pending = client.chat.completions.create(
      { model: MODEL, messages: USER },
      { signal: plain.signal },
    );
    await until(() => server!.requests.length === 1, 'the server got the request');
    plain.abort();
    await assert.rejects(pending, APIUserAbortError);
    await until(() => server!.aborted === 1, 'the server counted the abort');

    const streamed = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: USER, stream: true },
      { signal: streamed.signal },
    );
    // The SDK ends the iteration quietly on an abort instead of throwing.
    let text = '';
    for await (const chunk of stream) {
      assert.equal(chunk.choices[0]?.finish_reason, null, 'a hanging stream never finishes');
      text += chunk.choices[0]?.delta.content ?? '';
      if (text === 'partial answer') streamed.abort();
    }
    assert.equal(text, 'partial answer');
    await until(() => server!.aborted === 2, 'the server counted the streaming abort');
    const after = await client.chat.completions.create({ model: MODEL, messages: USER });
    assert.equal(after.choices[0]?.message.content, 'after');
    assert.equal(server!.aborted, 2, 'a completed response is no abort');
  });

  it('answers any number of requests from a function script, pushed replies first', async () => {
    const script = (request: { messages: { role: string }[] }, index: number): ScriptedReply =>
      request.messages.at(-1)?.role === 'tool'
        ? { content: `done ${index}` }
        : { tool_calls: [{ id: `call_${index}`, name: 'lookup', arguments: '{}' }] };
    const client = await clientFor(script);
    for (let round = 0; round < 3; round++) {
      const first = await client.chat.completions.create({ model: MODEL, messages: USER });
      const call = first.choices[0]?.message.tool_calls?.[0];
      assert.ok(call?.type === 'function');
      const answer = await client.chat.completions.create({
        model: MODEL,
        messages: [
          ...USER,
          first.choices[0]!.message,
          { role: 'tool', tool_call_id: call.id, content: 'found' },
        ],
      });
      assert.equal(answer.choices[0]?.message.content, `done ${2 * round + 1}`);
    }
    const recorded = server!.requests.at(-1)!.messages;
    assert.equal(recorded[1]?.content, null, 'an assistant tool-call message is recorded as sent');
    assert.equal(recorded[1]?.tool_calls?.[0]?.id, 'call_4');
    assert.equal(recorded[2]?.tool_call_id, 'call_4');

    server!.push({ content: 'pushed' });
    const pushed = await client.chat.completions.create({ model: MODEL, messages: USER });
    assert.equal(pushed.choices[0]?.message.content, 'pushed');
    assert.equal(server!.requests.length, 7);
  });
});
