// The model client with the real openai SDK against the scripted OpenAI-compatible test server:
// streamed text, tool calls reassembled from their pieces, usage, and every way a call fails. Also
// the tool definitions the model is given.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AGENT_TASKS } from '@neuroagent/contracts';
import { type OpenAiTestServer, startOpenAiTestServer } from '@neuroagent/platform/testing-openai';
import {
  createModelClient,
  ModelAborted,
  type ModelClientOptions,
  ModelError,
  type ModelMessage,
  type ModelTool,
} from '../src/agent/model-client.ts';
import type { LlmSettings } from '../src/agent/settings.ts';
import { modelSchema, toolDefinition } from '../src/agent/tool-calls.ts';

const MESSAGES: ModelMessage[] = [
  { role: 'system', content: 'sys' },
  { role: 'user', content: 'hi' },
];
const TOOL: ModelTool = {
  type: 'function',
  function: { name: 'echo', description: 'echo', parameters: { type: 'object', properties: {} } },
};
const LIMITS: ModelClientOptions = { maxReplyBytes: 64 * 1024, maxToolCalls: 8 };

function llm(baseUrl: string, extra: Partial<LlmSettings> = {}): LlmSettings {
  return {
    model: 'test-model',
    base_url: baseUrl,
    api_key: 'sk-test',
    timeout_s: 10,
    max_retries: 0,
    max_reply_kb: 64,
    max_completion_tokens: 0,
    ...extra,
  };
}

const never = () => new AbortController().signal;

/** Asserts the promise rejects with a ModelError of that code. */
async function rejectsWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ModelError, `expected a ModelError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

describe('model client', () => {
  let server: OpenAiTestServer;

  before(async () => {
    server = await startOpenAiTestServer([]);
  });

  after(async () => {
    await server?.close();
  });

  it('streams the text to onText in order and assembles the content', async () => {
    server.push({ chunks: ['Hel', 'lo ', 'wör', 'ld 🧠'] });
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    assert.equal(client.configured, true);
    assert.equal(client.model, 'test-model');
    const deltas: string[] = [];
    const reply = await client.stream(MESSAGES, undefined, (d) => deltas.push(d), never());
    assert.deepEqual(deltas, ['Hel', 'lo ', 'wör', 'ld 🧠']);
    assert.equal(reply.content, 'Hello wörld 🧠');
    assert.deepEqual(reply.toolCalls, []);

    const request = server.requests.at(-1);
    assert.equal(request?.model, 'test-model');
    assert.equal(request?.stream, true);
    assert.deepEqual(request?.stream_options, { include_usage: true });
    assert.deepEqual(request?.messages, MESSAGES);
    assert.equal('tools' in (request ?? {}), false);
    assert.equal('max_completion_tokens' in (request ?? {}), false);
    assert.equal(server.authorizations.at(-1), 'Bearer sk-test');
  });

  it('sends the tools and the completion cap when there are any', async () => {
    server.push({ content: 'ok' }, { content: 'ok' });
    const client = createModelClient(llm(server.baseUrl, { max_completion_tokens: 77 }), LIMITS);
    await client.stream(MESSAGES, [TOOL], () => {}, never());
    assert.deepEqual(server.requests.at(-1)?.tools, [TOOL]);
    assert.equal(server.requests.at(-1)?.max_completion_tokens, 77);
    // An empty tool list is no tools at all (the API refuses `tools: []`).
    await client.stream(MESSAGES, [], () => {}, never());
    assert.equal('tools' in (server.requests.at(-1) ?? {}), false);
  });

  it('reassembles parallel tool calls from their pieces, in index order', async () => {
    const args1 = JSON.stringify({ python_script: 'import math\nprint(math.pi * 2)' });
    const args2 = JSON.stringify({ text: 'héllo wörld, a longer argument' });
    server.push({
      content: 'Running both.',
      tool_calls: [
        { id: 'call_a', name: 'run_python', arguments: args1 },
        { id: 'call_b', name: 'echo', arguments: args2 },
        { id: 'call_c', name: 'echo', arguments: '' },
      ],
    });
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    const reply = await client.stream(MESSAGES, [TOOL], () => {}, never());
    assert.equal(reply.content, 'Running both.');
    assert.deepEqual(reply.toolCalls, [
      { id: 'call_a', name: 'run_python', arguments: args1 },
      { id: 'call_b', name: 'echo', arguments: args2 },
      { id: 'call_c', name: 'echo', arguments: '' },
    ]);
  });

  it('replaces a repeated or odd call id, so each result answers exactly one call', async () => {
    server.push({
      tool_calls: [
        { id: 'dup', name: 'echo', arguments: '{}' },
        { id: 'dup', name: 'echo', arguments: '{}' },
        { id: 'bad id with spaces', name: 'echo', arguments: '{}' },
      ],
    });
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    const { toolCalls } = await client.stream(MESSAGES, [TOOL], () => {}, never());
    const ids = toolCalls.map((c) => c.id);
    assert.equal(ids[0], 'dup');
    assert.equal(new Set(ids).size, 3, `ids not unique: ${ids.join(', ')}`);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_.:-]{1,64}$/);
  });

  it('maps the usage: cached and non-cached prompt tokens, completion tokens, the model', async () => {
    server.push({ content: 'x', usage: { prompt_tokens: 120, completion_tokens: 33, cached_tokens: 45 } });
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    const reply = await client.stream(MESSAGES, undefined, () => {}, never());
    assert.deepEqual(reply.usage, {
      input_cached: 45,
      input_noncached: 75,
      completion: 33,
      model: 'test-model',
    });
  });

  it('reports the model the server named, cut to 128 characters', async () => {
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    server.push({ content: 'x', model: 'test-model-2025-01-01' });
    assert.equal(
      (await client.stream(MESSAGES, undefined, () => {}, never())).usage.model,
      'test-model-2025-01-01',
    );
    const long = `m${'o'.repeat(299)}`;
    server.push({ content: 'x', model: long });
    assert.equal(
      (await client.stream(MESSAGES, undefined, () => {}, never())).usage.model,
      long.slice(0, 128),
    );
  });

  it('answers llm_error when the server answers with an error status', async () => {
    server.push({ status: 500 });
    const before = server.requests.length;
    const client = createModelClient(llm(server.baseUrl, { max_retries: 0 }), LIMITS);
    await rejectsWith(
      client.stream(MESSAGES, undefined, () => {}, never()),
      'llm_error',
    );
    assert.equal(server.requests.length - before, 1, 'max_retries 0: no retry');
    server.push({ status: 401 });
    await rejectsWith(
      client.stream(MESSAGES, undefined, () => {}, never()),
      'llm_error',
    );
  });

  it('retries a 500 max_retries times before streaming', async () => {
    server.push({ status: 500 }, { content: 'second time lucky' });
    const client = createModelClient(llm(server.baseUrl, { max_retries: 1 }), LIMITS);
    const reply = await client.stream(MESSAGES, undefined, () => {}, never());
    assert.equal(reply.content, 'second time lucky');
  });

  it('answers llm_unavailable when nothing listens', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const client = createModelClient(llm(`http://127.0.0.1:${port}/v1`), LIMITS);
    await rejectsWith(
      client.stream(MESSAGES, undefined, () => {}, never()),
      'llm_unavailable',
    );
  });

  it('answers llm_unavailable when the server does not answer in time', { timeout: 5000 }, async () => {
    server.push({ hang: true, chunks: ['slow'] });
    const client = createModelClient(llm(server.baseUrl, { timeout_s: 1 }), LIMITS);
    await rejectsWith(
      client.stream(MESSAGES, undefined, () => {}, never()),
      'llm_unavailable',
    );
  });

  it('stops a reply over maxReplyBytes, counted in UTF-8 bytes: llm_reply_too_large', async () => {
    const opts = { ...LIMITS, maxReplyBytes: 7 };
    const client = createModelClient(llm(server.baseUrl), opts);
    // Three 2-byte characters fit in 7 bytes; four do not, though they are four characters.
    server.push({ chunks: ['éé', 'é'] });
    assert.equal((await client.stream(MESSAGES, undefined, () => {}, never())).content, 'ééé');
    server.push({ chunks: ['éé', 'éé'] });
    const seen: string[] = [];
    await rejectsWith(
      client.stream(MESSAGES, undefined, (d) => seen.push(d), never()),
      'llm_reply_too_large',
    );
    assert.deepEqual(seen, ['éé'], 'the piece over the cap is not passed on');
    // Tool-call names and arguments count too.
    server.push({ tool_calls: [{ id: 'c', name: 'echo', arguments: '{"text":"long enough"}' }] });
    await rejectsWith(
      client.stream(MESSAGES, [TOOL], () => {}, never()),
      'llm_reply_too_large',
    );
  });

  it('answers llm_invalid_reply for a tool call at an index beyond maxToolCalls', async () => {
    const calls = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `c${i}`, name: 'echo', arguments: '{}' }));
    const client = createModelClient(llm(server.baseUrl), { ...LIMITS, maxToolCalls: 3 });
    server.push({ tool_calls: calls(3) });
    assert.equal((await client.stream(MESSAGES, [TOOL], () => {}, never())).toolCalls.length, 3);
    server.push({ tool_calls: calls(4) });
    await rejectsWith(
      client.stream(MESSAGES, [TOOL], () => {}, never()),
      'llm_invalid_reply',
    );
  });

  it('throws ModelAborted when the signal aborts mid-stream, and closes the connection', {
    timeout: 5000,
  }, async () => {
    server.push({ chunks: ['first', 'second'], hang: true });
    const abortedBefore = server.aborted;
    const ac = new AbortController();
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    const seen: string[] = [];
    await assert.rejects(
      client.stream(
        MESSAGES,
        undefined,
        (d) => {
          seen.push(d);
          if (seen.length === 1) ac.abort();
        },
        ac.signal,
      ),
      ModelAborted,
    );
    assert.equal(seen[0], 'first');
    const until = Date.now() + 2000;
    while (server.aborted === abortedBefore && Date.now() < until)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.aborted, abortedBefore + 1, 'the hanging response was closed');
  });

  it('throws ModelAborted for a signal aborted before the call', async () => {
    const ac = new AbortController();
    ac.abort();
    const client = createModelClient(llm(server.baseUrl), LIMITS);
    await assert.rejects(
      client.stream(MESSAGES, undefined, () => {}, ac.signal),
      ModelAborted,
    );
  });

  it('is not configured without a key and a base URL, and then refuses: llm_not_configured', async () => {
    const before = server.requests.length;
    const client = createModelClient(llm('', { api_key: '' }), LIMITS);
    assert.equal(client.configured, false);
    await rejectsWith(
      client.stream(MESSAGES, undefined, () => {}, never()),
      'llm_not_configured',
    );
    assert.equal(server.requests.length, before);
    // Either one is enough: a local server often needs no key.
    assert.equal(createModelClient(llm('', { api_key: 'sk-x' }), LIMITS).configured, true);
    const keyless = createModelClient(llm(server.baseUrl, { api_key: '' }), LIMITS);
    assert.equal(keyless.configured, true);
    server.push({ content: 'local' });
    assert.equal((await keyless.stream(MESSAGES, undefined, () => {}, never())).content, 'local');
  });
});

describe('tool definitions', () => {
  it('strips $id at every level of a schema, and nothing else', () => {
    const schema = {
      $id: 'Top',
      type: 'object',
      properties: {
        a: { $id: 'A', type: 'string', description: 'keeps $id-like text: $id' },
        b: {
          type: 'array',
          items: { $id: 'Item', type: 'object', properties: { c: { $id: 'C', type: 'integer' } } },
        },
        d: { anyOf: [{ $id: 'D1', type: 'null' }, { $ref: 'Top' }] },
      },
    };
    const out = modelSchema(schema);
    assert.deepEqual(out, {
      type: 'object',
      properties: {
        a: { type: 'string', description: 'keeps $id-like text: $id' },
        b: { type: 'array', items: { type: 'object', properties: { c: { type: 'integer' } } } },
        d: { anyOf: [{ type: 'null' }, { $ref: 'Top' }] },
      },
    });
    assert.equal(JSON.stringify(out).includes('"$id"'), false);
    // The input is left as it was.
    assert.equal(schema.$id, 'Top');
  });

  it('gives run_python only python_script: the agent fills in thread_id itself', () => {
    const task = AGENT_TASKS.find((t) => t.name === 'run_python');
    assert.ok(task, 'run_python is an agent task');
    const def = toolDefinition(task);
    assert.equal(def.type, 'function');
    assert.equal(def.function.name, 'run_python');
    assert.equal(def.function.description, task.agent.description);
    const params = def.function.parameters as {
      type: string;
      properties: Record<string, unknown>;
      $id?: string;
    };
    assert.equal(params.type, 'object');
    assert.deepEqual(Object.keys(params.properties), ['python_script']);
    assert.equal(JSON.stringify(params).includes('"$id"'), false);
    assert.equal(JSON.stringify(params).includes('thread_id'), false);
  });

  it('gives every agent task an object schema without ids', () => {
    for (const task of AGENT_TASKS) {
      const def = toolDefinition(task);
      assert.equal(def.type, 'function', task.name);
      const params = def.function.parameters as { type?: string };
      assert.equal(params.type, 'object', task.name);
      assert.equal(JSON.stringify(params).includes('"$id"'), false, task.name);
    }
  });
});
