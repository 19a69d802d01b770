// One streamed chat completion through the openai SDK, against any OpenAI-compatible server
// (NEUROAGENT_LLM__*): the text as it comes, the tool calls reassembled from their pieces, and
// the token usage in the original's shape. The reply is untrusted input: its size is capped while
// it streams, so a runaway or hostile server cannot fill the gateway's memory.
import type { TokenUsage } from '@neuroagent/contracts';
import { AppError } from '@neuroagent/platform';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import type { LlmSettings } from './settings.ts';

export type ModelMessage = ChatCompletionMessageParam;

const MAX_MODEL_NAME = 128;
export type ModelTool = ChatCompletionTool;

export interface ModelToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface ModelReply {
  content: string;
  toolCalls: ModelToolCall[];
  usage: TokenUsage;
}

/**
 * The model could not answer: llm_not_configured, llm_unavailable (no connection or a timeout),
 * llm_error (the server answered with an error), llm_reply_too_large, llm_invalid_reply.
 */
export class ModelError extends AppError {
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'ModelError';
  }
}

/** The stream was stopped by the caller's signal; what came so far is discarded. */
export class ModelAborted extends AppError {
  constructor() {
    super('aborted', 'the model call was stopped');
    this.name = 'ModelAborted';
  }
}

export interface ModelClient {
  readonly configured: boolean;
  readonly model: string;
  stream(
    messages: ModelMessage[],
    tools: ModelTool[] | undefined,
    onText: (delta: string) => void,
    signal: AbortSignal,
  ): Promise<ModelReply>;
}

export interface ModelClientOptions {
  /** The most bytes of text and tool arguments one reply may stream. */
  maxReplyBytes: number;
  /** Tool calls one reply may carry at most (pieces of more are a protocol error). */
  maxToolCalls: number;
}

export function createModelClient(settings: LlmSettings, opts: ModelClientOptions): ModelClient {
  // A local OpenAI-compatible server often needs no key, but the SDK insists on one.
  const configured = settings.api_key !== '' || settings.base_url !== '';
  const client = configured
    ? new OpenAI({
        apiKey: settings.api_key || 'unused',
        ...(settings.base_url ? { baseURL: settings.base_url } : {}),
        timeout: settings.timeout_s * 1000,
        maxRetries: settings.max_retries,
      })
    : null;

  return {
    configured,
    model: settings.model,
    async stream(messages, tools, onText, signal) {
      if (!client) {
        throw new ModelError(
          'llm_not_configured',
          'no model server is configured: set NEUROAGENT_LLM__API_KEY (and NEUROAGENT_LLM__BASE_URL for a server other than OpenAI)',
        );
      }
      const calls: { id: string; name: string; arguments: string }[] = [];
      let content = '';
      let bytes = 0;
      let usage: ChatCompletionChunk['usage'] | null = null;
      let model = settings.model;
      const grow = (piece: string) => {
        bytes += Buffer.byteLength(piece, 'utf8');
        if (bytes > opts.maxReplyBytes) {
          throw new ModelError(
            'llm_reply_too_large',
            `the model's reply exceeded ${opts.maxReplyBytes} bytes (NEUROAGENT_LLM__MAX_REPLY_KB)`,
          );
        }
      };
      // The SDK's own timeout ends when the headers arrive; this one covers the whole stream.
      const limit = AbortSignal.timeout(settings.timeout_s * 1000);
      const both = AbortSignal.any([signal, limit]);
      try {
        const stream = await client.chat.completions.create(
          {
            model: settings.model,
            messages,
            stream: true,
            stream_options: { include_usage: true },
            ...(tools && tools.length > 0 ? { tools } : {}),
            ...(settings.max_completion_tokens > 0
              ? { max_completion_tokens: settings.max_completion_tokens }
              : {}),
          },
          { signal: both },
        );
        for await (const chunk of stream) {
          // The name is the server's word: kept short, as it is stored with every message.
          if (typeof chunk.model === 'string' && chunk.model !== '')
            model = chunk.model.slice(0, MAX_MODEL_NAME);
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices?.[0]?.delta;
          if (!delta) continue;
          if (typeof delta.content === 'string' && delta.content !== '') {
            grow(delta.content);
            content += delta.content;
            onText(delta.content);
          }
          for (const piece of delta.tool_calls ?? []) {
            const index = piece.index;
            if (!Number.isInteger(index) || index < 0 || index >= opts.maxToolCalls) {
              throw new ModelError(
                'llm_invalid_reply',
                `the model sent a tool call at index ${index}, beyond ${opts.maxToolCalls - 1}`,
              );
            }
            const call = calls[index] ?? { id: '', name: '', arguments: '' };
            calls[index] = call;
            if (piece.id) call.id = piece.id;
            if (piece.function?.name) {
              grow(piece.function.name);
              call.name += piece.function.name;
            }
            if (piece.function?.arguments) {
              grow(piece.function.arguments);
              call.arguments += piece.function.arguments;
            }
          }
        }
      } catch (err) {
        if (signal.aborted) throw new ModelAborted();
        if (limit.aborted) throw timedOut(settings.timeout_s);
        if (err instanceof APIUserAbortError) throw new ModelAborted();
        throw asModelError(err);
      }
      // The SDK ends an aborted stream quietly instead of throwing.
      if (signal.aborted) throw new ModelAborted();
      if (limit.aborted) throw timedOut(settings.timeout_s);
      return {
        content,
        toolCalls: sanitizeCalls(calls.filter((c) => c !== undefined)),
        usage: toUsage(usage, model),
      };
    },
  };
}

// What the gateway stores and sends back of a call's id and name: the id must answer its call
// exactly, so a missing, odd or repeated one is replaced by one of ours (the model reads ours back
// in the next request); names longer than OpenAI's 64 characters cannot be a tool.
const CALL_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_TOOL_NAME = 64;

function sanitizeCalls(calls: { id: string; name: string; arguments: string }[]): ModelToolCall[] {
  const seen = new Set<string>();
  return calls.map((c, i) => {
    let id = CALL_ID_RE.test(c.id) && !seen.has(c.id) ? c.id : `call_gw_${i}`;
    while (seen.has(id)) id = `${id}_`;
    seen.add(id);
    return { id, name: c.name.slice(0, MAX_TOOL_NAME), arguments: c.arguments };
  });
}

const timedOut = (s: number) =>
  new ModelError('llm_unavailable', `the model call took longer than ${s} s (NEUROAGENT_LLM__TIMEOUT_S)`);

function asModelError(err: unknown): AppError {
  if (err instanceof ModelError) return err;
  if (err instanceof APIConnectionTimeoutError) {
    return new ModelError('llm_unavailable', 'the model server did not answer in time', { cause: err });
  }
  if (err instanceof APIConnectionError) {
    return new ModelError('llm_unavailable', 'the model server cannot be reached', { cause: err });
  }
  if (err instanceof APIError) {
    const status = err.status ?? 'no status';
    return new ModelError('llm_error', `the model server answered ${status}: ${err.message}`, { cause: err });
  }
  return new ModelError('llm_invalid_reply', 'the model server sent a reply this gateway cannot read', {
    cause: err,
  });
}

/** The original's accounting: cached and non-cached prompt tokens, completion tokens, the model. */
function toUsage(usage: ChatCompletionChunk['usage'] | null, model: string): TokenUsage {
  const prompt = nonNegative(usage?.prompt_tokens);
  const cached = Math.min(prompt, nonNegative(usage?.prompt_tokens_details?.cached_tokens));
  return {
    input_cached: cached,
    input_noncached: prompt - cached,
    completion: nonNegative(usage?.completion_tokens),
    model,
  };
}

const nonNegative = (n: unknown) =>
  typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.trunc(n) : 0;

export function addUsage(total: TokenUsage | null, more: TokenUsage): TokenUsage {
  if (!total) return { ...more };
  return {
    input_cached: total.input_cached + more.input_cached,
    input_noncached: total.input_noncached + more.input_noncached,
    completion: total.completion + more.completion,
    model: more.model,
  };
}
