// Test support: a local OpenAI-compatible chat completions endpoint that answers a script of
// replies in order and records every request, so tests drive the real openai SDK without the
// real API. Test code only: never imported by src/.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedUsage {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens?: number;
}

export interface ScriptedReply {
  /** The assistant message content, e.g. JSON.stringify({ sql_statement: 'SELECT 1' }). */
  content?: string;
  /** A refusal instead of content. */
  refusal?: string;
  /** An HTTP error status instead of a completion (401, 429, 500, …). */
  status?: number;
  /** Error code in the error body, e.g. 'insufficient_quota'. */
  code?: string;
  usage?: ScriptedUsage;
}

export interface RecordedChatRequest {
  model: string;
  messages: { role: string; content: string }[];
  response_format?: unknown;
  [key: string]: unknown;
}

export interface OpenAiTestServer {
  /** Pass as the SDK's baseURL (ends in /v1). */
  baseUrl: string;
  /** Parsed bodies of every POST /v1/chat/completions, in order. */
  requests: RecordedChatRequest[];
  /** Authorization headers of those requests. */
  authorizations: (string | undefined)[];
  close(): Promise<void>;
}

const DEFAULT_USAGE: ScriptedUsage = { prompt_tokens: 100, completion_tokens: 20, cached_tokens: 0 };

export async function startOpenAiTestServer(script: ScriptedReply[]): Promise<OpenAiTestServer> {
  const pending = [...script];
  const requests: RecordedChatRequest[] = [];
  const authorizations: (string | undefined)[] = [];
  let served = 0;

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      send(404, { error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
      return;
    }
    requests.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedChatRequest);
    authorizations.push(req.headers.authorization);
    const reply = pending.shift();
    if (!reply) {
      send(400, { error: { message: 'the test script has no more replies', type: 'invalid_request_error' } });
      return;
    }
    served += 1;
    if (reply.status !== undefined && reply.status >= 400) {
      // retry-after-ms keeps the SDK's own retry (maxRetries) from sleeping in tests.
      send(
        reply.status,
        {
          error: {
            message: `scripted ${reply.status}`,
            type: 'test_error',
            code: reply.code ?? null,
            param: null,
          },
        },
        { 'retry-after-ms': '1' },
      );
      return;
    }
    const usage = reply.usage ?? DEFAULT_USAGE;
    send(200, {
      id: `chatcmpl-test-${served}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: requests.at(-1)?.model ?? 'test-model',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: reply.content ?? null, refusal: reply.refusal ?? null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details: { cached_tokens: usage.cached_tokens ?? 0 },
      },
    });
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    authorizations,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
