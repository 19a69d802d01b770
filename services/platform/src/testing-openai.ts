// Test support: a local OpenAI-compatible chat completions endpoint that answers a script of
// replies and records every request, so tests drive the real openai SDK without the real API.
// It speaks both protocols the SDK uses: one JSON completion, or (body `stream: true`) server-sent
// chunks ending in `data: [DONE]`, tool calls streamed piecewise as the real API does.
// Imported by tests only, never by service code.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ScriptedUsage {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens?: number;
}

export interface ScriptedToolCall {
  /** Defaults to `call_<n>`, n counting every defaulted call this server has answered. */
  id?: string;
  name: string;
  /** The JSON text of the arguments, sent verbatim. */
  arguments: string;
}

export interface ScriptedReply {
  /** The assistant message content, e.g. JSON.stringify({ sql_statement: 'SELECT 1' }). */
  content?: string;
  /** Streaming only: the exact content deltas (default: `content` cut into ~8-character pieces). */
  chunks?: string[];
  /** A refusal instead of content. */
  refusal?: string;
  /** The assistant's tool calls; finish_reason becomes 'tool_calls'. */
  tool_calls?: ScriptedToolCall[];
  /** An HTTP error status instead of a completion (401, 429, 500, …). */
  status?: number;
  /** Error code in the error body, e.g. 'insufficient_quota'. */
  code?: string;
  usage?: ScriptedUsage;
  /** The model name the answer reports (default: the request's). */
  model?: string;
  /** Wait this long before the first byte of the response. */
  delayMs?: number;
  /** Streaming only: pause between chunks. */
  chunkDelayMs?: number;
  /** Keep the response open until the client disconnects: after the content and tool-call chunks
   * when streaming, before any byte otherwise. For disconnect and cancel tests. */
  hang?: boolean;
}

export interface RecordedToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

export interface RecordedMessage {
  role: string;
  /** Typed as the text most tests read; at runtime it is whatever the client sent: null on an
   * assistant message that only carries tool_calls, or an array of content parts. */
  content: string;
  tool_calls?: RecordedToolCall[];
  tool_call_id?: string;
  [key: string]: unknown;
}

export interface RecordedChatRequest {
  model: string;
  messages: RecordedMessage[];
  response_format?: unknown;
  tools?: unknown[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [key: string]: unknown;
}

/** Answers request number `index` (0-based); undefined means the script is exhausted. */
export type ScriptFunction = (request: RecordedChatRequest, index: number) => ScriptedReply | undefined;

export interface OpenAiTestServer {
  /** Pass as the SDK's baseURL (ends in /v1). */
  baseUrl: string;
  /** Parsed bodies of every POST /v1/chat/completions, in order. */
  requests: RecordedChatRequest[];
  /** Authorization headers of those requests. */
  authorizations: (string | undefined)[];
  /** Requests whose client disconnected before the response ended. */
  readonly aborted: number;
  /** Appends replies to the script; with a function script they are answered before it is asked. */
  push(...replies: ScriptedReply[]): void;
  /** Closes every open connection, hanging ones included. */
  close(): Promise<void>;
}

const DEFAULT_USAGE: ScriptedUsage = { prompt_tokens: 100, completion_tokens: 20, cached_tokens: 0 };
const PIECE = 8;

/** What one answer needs besides the reply: the ids the client will see. */
interface Turn {
  id: string;
  created: number;
  model: string;
  calls: Required<ScriptedToolCall>[];
}

function pieces(text: string, size: number): string[] {
  const chars = Array.from(text); // by code point, so no delta splits a surrogate pair
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

function usageBody(usage: ScriptedUsage) {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
    prompt_tokens_details: { cached_tokens: usage.cached_tokens ?? 0 },
  };
}

function completionBody(reply: ScriptedReply, turn: Turn) {
  const toolCalls = turn.calls.map((c) => ({
    id: c.id,
    type: 'function',
    function: { name: c.name, arguments: c.arguments },
  }));
  return {
    id: turn.id,
    object: 'chat.completion',
    created: turn.created,
    model: turn.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: reply.content ?? reply.chunks?.join('') ?? null,
          refusal: reply.refusal ?? null,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        logprobs: null,
        finish_reason: toolCalls.length > 0 ? 'tool_calls' : 'stop',
      },
    ],
    usage: usageBody(reply.usage ?? DEFAULT_USAGE),
  };
}

/** The SSE events of a streamed answer: `head` carries the message, `tail` closes it. */
function streamEvents(reply: ScriptedReply, turn: Turn, includeUsage: boolean) {
  // With include_usage the real API sends usage: null on every chunk but the last.
  const base = { id: turn.id, object: 'chat.completion.chunk', created: turn.created, model: turn.model };
  const envelope = includeUsage ? { ...base, usage: null } : base;
  const event = (body: unknown) => `data: ${JSON.stringify(body)}\n\n`;
  const chunk = (delta: unknown, finish: string | null = null) =>
    event({ ...envelope, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });

  const text = reply.chunks ?? pieces(reply.content ?? '', PIECE);
  const head = [chunk({ role: 'assistant', content: text.length > 0 ? '' : null, refusal: null })];
  for (const piece of text) head.push(chunk({ content: piece }));
  for (const piece of pieces(reply.refusal ?? '', PIECE)) head.push(chunk({ refusal: piece }));
  turn.calls.forEach((call, index) => {
    const opening = { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
    head.push(chunk({ tool_calls: [opening] }));
    // At least two argument pieces, so clients are made to concatenate them.
    const size = Math.max(1, Math.min(PIECE, Math.ceil(call.arguments.length / 2)));
    for (const piece of pieces(call.arguments, size)) {
      head.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
    }
  });

  const tail = [chunk({}, turn.calls.length > 0 ? 'tool_calls' : 'stop')];
  if (includeUsage)
    tail.push(event({ ...base, choices: [], usage: usageBody(reply.usage ?? DEFAULT_USAGE) }));
  tail.push('data: [DONE]\n\n');
  return { head, tail };
}

/** Resolves false instead of waiting on when the client has gone. */
async function pause(ms: number | undefined, gone: AbortSignal): Promise<boolean> {
  if (ms !== undefined && ms > 0) await sleep(ms, undefined, { signal: gone }).catch(() => undefined);
  return !gone.aborted;
}

async function hangUntil(gone: AbortSignal): Promise<void> {
  if (!gone.aborted) await once(gone, 'abort');
}

async function stream(
  res: ServerResponse,
  reply: ScriptedReply,
  turn: Turn,
  request: RecordedChatRequest,
  gone: AbortSignal,
) {
  const { head, tail } = streamEvents(reply, turn, request.stream_options?.include_usage === true);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  const events = reply.hang ? head : [...head, ...tail];
  for (const [i, event] of events.entries()) {
    if (i > 0 && !(await pause(reply.chunkDelayMs, gone))) return;
    res.write(event);
  }
  if (reply.hang) return hangUntil(gone);
  res.end();
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, status: number, message: string, code: string | null = null) {
  // retry-after-ms keeps the SDK's own retry (maxRetries) from sleeping in tests.
  const type = status === 400 || status === 404 ? 'invalid_request_error' : 'test_error';
  sendJson(res, status, { error: { message, type, code, param: null } }, { 'retry-after-ms': '1' });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startOpenAiTestServer(
  script: ScriptedReply[] | ScriptFunction,
): Promise<OpenAiTestServer> {
  const pending = typeof script === 'function' ? [] : [...script];
  const answer = typeof script === 'function' ? script : () => undefined;
  const requests: RecordedChatRequest[] = [];
  const authorizations: (string | undefined)[] = [];
  let aborted = 0;
  let defaultedCalls = 0;
  let closing = false;

  const server = createServer(async (req, res) => {
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded && !closing) aborted += 1;
      gone.abort();
    });
    const body = await readBody(req);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      sendError(res, 404, `no route ${req.method} ${req.url}`);
      return;
    }
    let request: RecordedChatRequest;
    try {
      request = JSON.parse(body) as RecordedChatRequest;
    } catch {
      sendError(res, 400, 'the request body is not JSON');
      return;
    }
    requests.push(request);
    authorizations.push(req.headers.authorization);
    const index = requests.length - 1;
    const reply = pending.shift() ?? answer(request, index);
    if (!reply) {
      sendError(res, 400, 'the test script has no more replies');
      return;
    }
    if (!(await pause(reply.delayMs, gone.signal))) return;
    if (reply.status !== undefined && reply.status >= 400) {
      sendError(res, reply.status, `scripted ${reply.status}`, reply.code ?? null);
      return;
    }
    const turn: Turn = {
      id: `chatcmpl-test-${index + 1}`,
      created: Math.floor(Date.now() / 1000),
      model: reply.model ?? request.model ?? 'test-model',
      calls: (reply.tool_calls ?? []).map((c) => ({ ...c, id: c.id ?? `call_${++defaultedCalls}` })),
    };
    if (request.stream === true) await stream(res, reply, turn, request, gone.signal);
    else if (reply.hang) await hangUntil(gone.signal);
    else sendJson(res, 200, completionBody(reply, turn));
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    authorizations,
    get aborted() {
      return aborted;
    },
    push(...replies) {
      pending.push(...replies);
    },
    async close() {
      closing = true;
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
