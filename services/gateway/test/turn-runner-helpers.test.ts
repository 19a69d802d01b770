// The turn runner's pure parts: the tool result text the model reads (cut to the byte cap on a
// character boundary) and the stored thread turned into the model's messages (every tool call
// answered exactly once, as the chat completions API requires).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message, ToolCall } from '@neuroagent/contracts';
import type { ToolOutcome } from '../src/agent/tool-calls.ts';
import { modelMessages, toolResultText } from '../src/agent/turn-runner.ts';

const MARK = /\n\[truncated by the gateway: (\d+) of (\d+) bytes shown\]$/;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** Bytes the marker takes for a text of `total` bytes: the cap leaves room for it. */
const markRoom = (total: number) => bytes(`\n[truncated by the gateway: ${total} of ${total} bytes shown]`);

describe('toolResultText', () => {
  const succeeded: ToolOutcome = { status: 'succeeded', taskId: 't1', result: { value: 42, text: 'ok' } };

  it('gives the whole JSON when it fits, untruncated', () => {
    const full = JSON.stringify({ status: 'succeeded', task_id: 't1', result: { value: 42, text: 'ok' } });
    assert.deepEqual(toolResultText(succeeded, 10_000), { text: full, truncated: false });
    // Exactly at the cap still fits.
    assert.deepEqual(toolResultText(succeeded, bytes(full)), { text: full, truncated: false });
    assert.equal(toolResultText(succeeded, bytes(full) - 1).truncated, true);
  });

  it('gives null for a succeeded outcome without a result', () => {
    const { text } = toolResultText({ status: 'succeeded', taskId: 't2' }, 1000);
    assert.deepEqual(JSON.parse(text), { status: 'succeeded', task_id: 't2', result: null });
  });

  it('carries the error, never a result, for failed, cancelled and rejected outcomes', () => {
    const error = { code: 'python_error', message: 'boom' };
    for (const status of ['failed', 'cancelled', 'rejected'] as const) {
      const taskId = status === 'rejected' ? null : 't3';
      // A stray result on a non-success outcome must not reach the model.
      const { text, truncated } = toolResultText({ status, taskId, error, result: { leaked: true } }, 1000);
      assert.equal(truncated, false);
      assert.deepEqual(JSON.parse(text), { status, task_id: taskId, error });
    }
    assert.deepEqual(JSON.parse(toolResultText({ status: 'failed', taskId: null }, 1000).text), {
      status: 'failed',
      task_id: null,
      error: null,
    });
  });

  it('cuts an ASCII result to fit the cap, marker included, and marks the cut with shown and total bytes', () => {
    const outcome: ToolOutcome = { status: 'succeeded', taskId: 't4', result: 'x'.repeat(500) };
    const full = JSON.stringify({ status: 'succeeded', task_id: 't4', result: 'x'.repeat(500) });
    const { text, truncated } = toolResultText(outcome, 100);
    assert.equal(truncated, true);
    const m = MARK.exec(text);
    assert.ok(m, text);
    const shown = 100 - markRoom(bytes(full));
    assert.equal(Number(m[1]), shown);
    assert.equal(Number(m[2]), bytes(full));
    assert.equal(text.slice(0, m.index), full.slice(0, shown));
    assert.ok(bytes(text) <= 100, `${bytes(text)} bytes`);
  });

  it('never cuts a multi-byte character in half, at any cap', () => {
    // 2-, 3- and 4-byte characters (é, €, 🧠), so every offset inside a sequence is tried.
    const result = 'é€🧠'.repeat(20);
    const outcome: ToolOutcome = { status: 'succeeded', taskId: 't5', result };
    const full = JSON.stringify({ status: 'succeeded', task_id: 't5', result });
    const fullBytes = Buffer.from(full, 'utf8');
    // Character boundaries of the full text, in bytes.
    const boundaries = new Set<number>([0]);
    let at = 0;
    for (const ch of full) {
      at += bytes(ch);
      boundaries.add(at);
    }
    const start = bytes(full.slice(0, full.indexOf('é'))) + markRoom(fullBytes.length);
    let cutInside = 0;
    for (let cap = start; cap < start + 30; cap++) {
      const { text, truncated } = toolResultText(outcome, cap);
      assert.equal(truncated, true);
      const m = MARK.exec(text);
      assert.ok(m, `cap ${cap}: ${text}`);
      const shown = Number(m[1]);
      assert.equal(Number(m[2]), fullBytes.length, `cap ${cap}`);
      // The largest character boundary at or below what the cap leaves beside the marker.
      let expected = cap - markRoom(fullBytes.length);
      while (!boundaries.has(expected)) expected--;
      assert.ok(bytes(text) <= cap, `cap ${cap}`);
      assert.equal(shown, expected, `cap ${cap}`);
      if (expected !== cap - markRoom(fullBytes.length)) cutInside++;
      const body = text.slice(0, m.index);
      assert.ok(!body.includes('\uFFFD'), `cap ${cap}: a replacement character in ${body}`);
      assert.equal(bytes(body), shown, `cap ${cap}`);
      assert.ok(full.startsWith(body), `cap ${cap}`);
    }
    // The range did land inside multi-byte sequences, so the boundary rule was exercised.
    assert.ok(cutInside > 5);
  });
});

// ---------------------------------------------------------------------------------------------

let seq = 0;
function msg(role: Message['role'], fields: Partial<Message> = {}): Message {
  seq += 1;
  return {
    id: `m${seq}`,
    thread_id: 'th',
    turn_id: 'tu',
    seq,
    role,
    content: null,
    tool_calls: [],
    tool_call_id: null,
    task_id: null,
    tool_status: null,
    truncated: false,
    usage: null,
    created_at: '2025-01-01T00:00:00.000Z',
    ...fields,
  };
}

const call = (id: string, name = 'run_python', args = '{"python_script":"1+1"}'): ToolCall => ({
  id,
  name,
  arguments: args,
  task_id: `task-${id}`,
});

const user = (content: string) => msg('user', { content });
const assistant = (content: string | null, calls: ToolCall[] = []) =>
  msg('assistant', { content, tool_calls: calls });
const tool = (callId: string, content: string) =>
  msg('tool', { tool_call_id: callId, content, tool_status: 'succeeded', task_id: `task-${callId}` });

/** What modelMessages answers for a call whose result was never stored. */
function isCancelledResult(m: unknown, callId: string): boolean {
  const t = m as { role: string; tool_call_id?: string; content: string };
  if (t.role !== 'tool' || t.tool_call_id !== callId) return false;
  const body = JSON.parse(t.content);
  return body.status === 'cancelled' && body.error?.code === 'cancelled';
}

describe('modelMessages', () => {
  it('opens with the system prompt, then the thread in order', () => {
    const out = modelMessages('You are a test.', [
      user('hi'),
      assistant('hello'),
      user('again'),
      assistant(null),
    ]);
    assert.deepEqual(out, [
      { role: 'system', content: 'You are a test.' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'again' },
      // An assistant message without text or calls is still a string for the API.
      { role: 'assistant', content: '' },
    ]);
    assert.deepEqual(modelMessages('sys', []), [{ role: 'system', content: 'sys' }]);
  });

  it("maps an assistant's tool calls to the OpenAI shape, with their results after them", () => {
    const out = modelMessages('sys', [
      user('compute'),
      assistant('Let me run it.', [call('c1'), call('c2', 'echo', '{}')]),
      tool('c1', '{"status":"succeeded","result":2}'),
      tool('c2', '{"status":"succeeded","result":{}}'),
      assistant('It is 2.'),
    ]);
    assert.deepEqual(out.slice(1), [
      { role: 'user', content: 'compute' },
      {
        role: 'assistant',
        content: 'Let me run it.',
        tool_calls: [
          {
            id: 'c1',
            type: 'function',
            function: { name: 'run_python', arguments: '{"python_script":"1+1"}' },
          },
          { id: 'c2', type: 'function', function: { name: 'echo', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: '{"status":"succeeded","result":2}' },
      { role: 'tool', tool_call_id: 'c2', content: '{"status":"succeeded","result":{}}' },
      { role: 'assistant', content: 'It is 2.' },
    ]);
    // A tool-calling message without text keeps content null (allowed there by the API).
    const [, , bare] = modelMessages('sys', [user('x'), assistant(null, [call('c3')]), tool('c3', 'r')]);
    assert.equal((bare as { content: unknown }).content, null);
  });

  it('answers a call without a stored result as cancelled, right after its assistant message', () => {
    const out = modelMessages('sys', [
      user('q1'),
      assistant(null, [call('a'), call('b')]),
      tool('a', 'result a'),
      user('q2'),
      assistant('done'),
    ]);
    assert.deepEqual(
      out.map((m) => m.role),
      ['system', 'user', 'assistant', 'tool', 'tool', 'user', 'assistant'],
    );
    assert.deepEqual(out[3], { role: 'tool', tool_call_id: 'a', content: 'result a' });
    assert.ok(isCancelledResult(out[4], 'b'), JSON.stringify(out[4]));
  });

  it('answers the open calls of the last message too', () => {
    const out = modelMessages('sys', [user('q'), assistant(null, [call('x'), call('y')])]);
    assert.equal(out.length, 5);
    assert.ok(isCancelledResult(out[3], 'x'));
    assert.ok(isCancelledResult(out[4], 'y'));
  });

  it('closes open calls before the next assistant message as well', () => {
    const out = modelMessages('sys', [user('q'), assistant(null, [call('p')]), assistant('after')]);
    assert.deepEqual(
      out.map((m) => m.role),
      ['system', 'user', 'assistant', 'tool', 'assistant'],
    );
    assert.ok(isCancelledResult(out[3], 'p'));
  });

  it('starts at the first user message when the history cap cut the thread mid-round', () => {
    const out = modelMessages('sys', [
      tool('old', 'orphan result'),
      assistant('old answer'),
      assistant(null, [call('old2')]),
      user('newest question'),
      assistant('answer'),
    ]);
    assert.deepEqual(out, [
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'newest question' },
      { role: 'assistant', content: 'answer' },
    ]);
    // No user message left at all: only the system prompt.
    assert.deepEqual(modelMessages('sys', [assistant(null, [call('z')]), tool('z', 'r')]), [
      { role: 'system', content: 'sys' },
    ]);
  });

  it('drops tool messages that answer no open call: unknown ids, and repeats', () => {
    const out = modelMessages('sys', [
      user('q'),
      assistant(null, [call('k')]),
      tool('unknown', 'stray'),
      tool('k', 'first'),
      tool('k', 'repeat'),
      user('q2'),
      tool('k', 'late'),
    ]);
    assert.deepEqual(out.slice(1), [
      { role: 'user', content: 'q' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'k',
            type: 'function',
            function: { name: 'run_python', arguments: '{"python_script":"1+1"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'k', content: 'first' },
      { role: 'user', content: 'q2' },
    ]);
  });

  it('gives every tool call exactly one answer, whatever the history', () => {
    const history = [
      user('q'),
      assistant(null, [call('1'), call('2'), call('3')]),
      tool('3', 'r3'),
      tool('9', 'stray'),
      tool('1', 'r1'),
      user('q2'),
      assistant(null, [call('4')]),
    ];
    const out = modelMessages('sys', history);
    const asked = out.flatMap((m) =>
      'tool_calls' in m && m.tool_calls ? m.tool_calls.map((c) => c.id) : [],
    );
    const answered = out
      .filter((m) => m.role === 'tool')
      .map((m) => (m as { tool_call_id: string }).tool_call_id);
    assert.deepEqual([...answered].sort(), [...asked].sort());
    assert.deepEqual(answered, ['3', '1', '2', '4']);
  });
});
