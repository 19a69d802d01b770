// The agent API's routes (docs/agent.md), for the OpenAPI document: threads, their messages, and
// turns with their Server-Sent Events. Must not import app.ts or route modules.
import {
  MessageEvent,
  MessageList,
  MessagePost,
  TextEvent,
  Thread,
  ThreadCreate,
  ThreadList,
  ThreadPatch,
  ToolCallEvent,
  ToolResultEvent,
  TURN_EVENT_TYPES,
  Turn,
  TurnErrorEvent,
  type TurnEventType,
  TurnResult,
  TurnStartedEvent,
} from '@neuroagent/contracts';
import { type TSchema, Type } from '@sinclair/typebox';
import { AgentSettings } from '../agent/settings.ts';
import { CHAT_ROUTE, RateLimitSettings } from '../rate-limit/settings.ts';
import { defineRoute, type ResponseSpec, type RouteDefinition } from './registry.ts';
import { LIMIT_HEADERS, RATE_LIMITED, RETRY_AFTER, UNAUTHORIZED, UNAVAILABLE } from './responses.ts';

const ThreadId = Type.Object({ id: Type.String({ description: 'Thread id' }) });
const Page = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Page size (default 20)' })),
  cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page' })),
});

const NOT_FOUND: ResponseSpec = {
  description: "No such thread, or another user's (code thread_not_found)",
};
const BAD_PAGE: ResponseSpec = {
  description: 'limit is not an integer from 1 to 100, or cursor is not one of ours',
};
const BAD_BODY: ResponseSpec = { description: 'Malformed JSON or a body that does not match the schema' };
const NOT_JSON: ResponseSpec = {
  description: 'Content-Type is not application/json (code unsupported_media_type)',
};
const BODY_TOO_LARGE: ResponseSpec = {
  description: 'The body is over NEUROAGENT_HTTP__MAX_BODY_KB (code body_too_large)',
};
const guarded = { 401: UNAUTHORIZED, 503: UNAVAILABLE };

const defaultOf = (schema: TSchema | undefined): unknown =>
  (schema as { default?: unknown } | undefined)?.default;
const agent = AgentSettings.properties;
const budget = RateLimitSettings.properties;
const CHAT_POINTS = defaultOf(budget[`${CHAT_ROUTE}_points`]);
const CHAT_WINDOW_S = defaultOf(budget[`${CHAT_ROUTE}_window_s`]);

// ------------------------------------------------------------------ Turn events (SSE)

/** Each event's data and when it is sent; a Record so a new TURN_EVENT_TYPES entry must be added. */
const TURN_EVENTS: Record<TurnEventType, { data: TSchema; description: string }> = {
  turn: { data: TurnStartedEvent, description: 'The turn started: the first event of every turn' },
  text: { data: TextEvent, description: 'The next piece of the assistant text, as the model writes it' },
  tool_call: { data: ToolCallEvent, description: 'The model called a tool; it runs as a task of the caller' },
  tool_result: { data: ToolResultEvent, description: "A tool call's task ended, or the call was refused" },
  message: { data: MessageEvent, description: 'Final: the turn completed with this assistant message' },
  error: { data: TurnErrorEvent, description: 'Final: the turn failed or was cancelled' },
};

const pascal = (name: string) =>
  name
    .split('_')
    .map((w) => (w[0] ?? '').toUpperCase() + w.slice(1))
    .join('');

/** The component name of one Server-Sent Event of a turn, e.g. TurnSseToolCall. */
export const turnSseSchemaId = (type: TurnEventType) => `TurnSse${pascal(type)}`;

/**
 * One SSE message of a turn: its `event:`, `id:` and `data:` fields. `data` is JSON text, so it is
 * a string whose contentSchema is the event's data schema (JSON Schema 2020-12, as OpenAPI 3.1 uses).
 */
function sseFrame(type: TurnEventType): TSchema {
  const { data, description } = TURN_EVENTS[type];
  return Type.Object(
    {
      event: Type.Literal(type),
      id: Type.String({
        pattern: '^\\d+-\\d+$',
        description: 'The Redis stream entry id of the event: send it as Last-Event-ID to resume after it',
      }),
      data: Type.Unsafe<string>({
        type: 'string',
        contentMediaType: 'application/json',
        contentSchema: data,
      }),
    },
    { $id: turnSseSchemaId(type), description },
  );
}

/**
 * A turn's stream, documented as a oneOf over its messages discriminated by `event`, so every
 * event's data schema is a component. Documentation only: the body itself is text/event-stream.
 */
const TurnEventStream = Type.Unsafe<string>({
  $id: 'TurnSseEvent',
  description:
    'Each Server-Sent Event of a turn is one of these. A turn starts with `turn`, then has `text`, `tool_call` ' +
    'and `tool_result` as they happen (a resumed stream starts after its Last-Event-ID), and ends with the final `message` (completed) or `error` (failed or ' +
    'cancelled); nothing follows either. Lines starting with `:` are keep-alive comments (every 15 s).',
  oneOf: TURN_EVENT_TYPES.map(sseFrame),
  discriminator: {
    propertyName: 'event',
    mapping: Object.fromEntries(
      TURN_EVENT_TYPES.map((t) => [t, `#/components/schemas/${turnSseSchemaId(t)}`]),
    ),
  },
});

const STREAM_HEADERS = {
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no (proxies must not buffer the stream)',
};

const eventList = TURN_EVENT_TYPES.map(
  (t) => `\`${t}\` (data ${(TURN_EVENTS[t].data as { $id?: string }).$id})`,
).join(', ');

const STREAM_FORMAT =
  `Each SSE message has \`event:\` one of ${eventList}, \`id:\` the Redis stream entry id of the event ` +
  '(send it back as Last-Event-ID to GET /threads/{id}/turn/events to resume after it) and `data:` the JSON ' +
  'of the event. The stream ends after the final `message` (the turn completed) or `error` (it failed or ' +
  'was cancelled). The TurnSseEvent schema documents each message.';

// ------------------------------------------------------------------ Operations

export function threadRoutes(): RouteDefinition[] {
  return [
    defineRoute({
      method: 'post',
      path: '/threads',
      operationId: 'createThread',
      summary: 'Start a thread',
      description: "The body may be left out: the thread is then titled 'New chat'.",
      tags: ['agent'],
      body: ThreadCreate,
      bodyOptional: true,
      responses: {
        201: {
          description: 'The new thread',
          schema: Thread,
          headers: { location: 'The thread, /threads/{id}' },
        },
        400: BAD_BODY,
        413: BODY_TOO_LARGE,
        415: NOT_JSON,
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/threads',
      operationId: 'listThreads',
      summary: "List the caller's threads, newest first",
      tags: ['agent'],
      query: Page,
      responses: {
        200: { description: 'One page of threads, each with its latest turn', schema: ThreadList },
        400: BAD_PAGE,
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/threads/:id',
      operationId: 'getThread',
      summary: 'Read a thread and its latest turn',
      tags: ['agent'],
      params: ThreadId,
      responses: { 200: { description: 'The thread', schema: Thread }, 404: NOT_FOUND, ...guarded },
      security: true,
    }),
    defineRoute({
      method: 'patch',
      path: '/threads/:id',
      operationId: 'renameThread',
      summary: 'Rename a thread',
      tags: ['agent'],
      params: ThreadId,
      body: ThreadPatch,
      responses: {
        200: { description: 'The renamed thread', schema: Thread },
        400: BAD_BODY,
        404: NOT_FOUND,
        413: BODY_TOO_LARGE,
        415: NOT_JSON,
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'delete',
      path: '/threads/:id',
      operationId: 'deleteThread',
      summary: 'Delete a thread with its messages and turns',
      tags: ['agent'],
      params: ThreadId,
      responses: {
        204: { description: 'Deleted' },
        404: NOT_FOUND,
        409: {
          description:
            'A turn of the thread is running; cancel it first with DELETE /threads/{id}/turn (code turn_in_progress)',
        },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/threads/:id/messages',
      operationId: 'listMessages',
      summary: "A thread's messages, oldest first",
      tags: ['agent'],
      params: ThreadId,
      query: Page,
      responses: {
        200: { description: 'One page of messages, with the latest turn', schema: MessageList },
        400: BAD_PAGE,
        404: NOT_FOUND,
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'post',
      path: '/threads/:id/messages',
      operationId: 'postMessage',
      summary: 'Send a message: run a turn and stream it',
      description:
        'Starts a turn: the model answers the message, calling tools (each a task of the caller) for at most ' +
        `NEUROAGENT_AGENT__MAX_TOOL_ROUNDS rounds (default ${defaultOf(agent.max_tool_rounds)}) and ` +
        `NEUROAGENT_AGENT__TURN_TIMEOUT_S seconds (default ${defaultOf(agent.turn_timeout_s)}). ` +
        `By default the answer is the turn as Server-Sent Events. ${STREAM_FORMAT} ` +
        'With Accept: application/json the answer waits for the turn to end and is a TurnResult instead. ' +
        'A client that goes away does not end the turn at once: it keeps running for ' +
        `NEUROAGENT_AGENT__DISCONNECT_GRACE_S seconds (default ${defaultOf(agent.disconnect_grace_s)}), waiting ` +
        'for GET /threads/{id}/turn/events, then is cancelled. One turn runs per thread at a time. ' +
        `Rate limited by the \`${CHAT_ROUTE}\` budget: NEUROAGENT_RATE_LIMIT__CHAT_POINTS turns ` +
        `(default ${CHAT_POINTS}) per NEUROAGENT_RATE_LIMIT__CHAT_WINDOW_S seconds (default ${CHAT_WINDOW_S}); ` +
        "its tool calls count against the caller's `submit` budget as well.",
      tags: ['agent'],
      params: ThreadId,
      body: MessagePost,
      responses: {
        200: {
          description:
            'text/event-stream (the default): the turn as it runs, ending with `message` or `error`. ' +
            'application/json (Accept: application/json): the ended turn and its messages',
          contentType: 'text/event-stream',
          schema: TurnEventStream,
          alternatives: { 'application/json': TurnResult },
          headers: { 'x-turn-id': 'The id of the turn', ...STREAM_HEADERS, ...LIMIT_HEADERS },
        },
        400: BAD_BODY,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        409: { description: 'A turn of this thread is already running (code turn_in_progress)' },
        413: {
          description:
            'The message is over NEUROAGENT_AGENT__MAX_MESSAGE_KB KiB of UTF-8 ' +
            `(default ${defaultOf(agent.max_message_kb)}; code message_too_large), or the body is over ` +
            'NEUROAGENT_HTTP__MAX_BODY_KB (code body_too_large)',
        },
        415: NOT_JSON,
        429: {
          ...RATE_LIMITED,
          description:
            `Over the \`${CHAT_ROUTE}\` budget (code rate_limited): NEUROAGENT_RATE_LIMIT__CHAT_POINTS turns ` +
            `(default ${CHAT_POINTS}) per NEUROAGENT_RATE_LIMIT__CHAT_WINDOW_S seconds (default ${CHAT_WINDOW_S})`,
        },
        503: {
          description:
            'No model server is configured: set NEUROAGENT_LLM__API_KEY, and NEUROAGENT_LLM__BASE_URL for a ' +
            `server other than OpenAI (code llm_not_configured); or ${UNAVAILABLE.description}`,
          headers: RETRY_AFTER,
        },
      },
      security: true,
    }),
    defineRoute({
      method: 'delete',
      path: '/threads/:id/turn',
      operationId: 'cancelTurn',
      summary: "Cancel the thread's running turn",
      description:
        'Its tool tasks are cancelled and it ends as cancelled: its streams end with an `error` event. ' +
        'Follow GET /threads/{id} for the final status.',
      tags: ['agent'],
      params: ThreadId,
      responses: {
        202: { description: 'Cancellation requested; the running turn as it was when asked', schema: Turn },
        404: NOT_FOUND,
        409: { description: 'No turn of the thread is running (code no_turn_running)' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/threads/:id/turn/events',
      operationId: 'streamTurnEvents',
      summary: "Follow or resume a turn's events (Server-Sent Events)",
      description:
        'The events of the thread’s latest turn (or of ?turn_id=) from the start, or after Last-Event-ID, on any ' +
        'gateway. While a turn runs this stream keeps it alive as POST /threads/{id}/messages does. ' +
        `A finished turn's events stay NEUROAGENT_AGENT__EVENTS_TTL_S seconds (default ${defaultOf(agent.events_ttl_s)}). ` +
        STREAM_FORMAT,
      tags: ['agent'],
      params: ThreadId,
      query: Type.Object({
        turn_id: Type.Optional(
          Type.String({ description: "A turn of the thread; default the thread's latest" }),
        ),
      }),
      headers: Type.Object({
        'last-event-id': Type.Optional(
          Type.String({
            description:
              'The `id:` of the last event received: the stream resumes after it (ignored unless a stream id like 1712345678901-0)',
          }),
        ),
      }),
      responses: {
        200: {
          description: 'The event stream, ending with `message` or `error`',
          contentType: 'text/event-stream',
          schema: TurnEventStream,
          headers: STREAM_HEADERS,
        },
        404: {
          description:
            "No such thread, or another user's (code thread_not_found); no such turn in it, or no turn yet (code turn_not_found)",
        },
        410: {
          description:
            "The turn ended and its events are gone (code turn_events_expired); GET /threads/{id}/messages has the turn's messages",
        },
        ...guarded,
      },
      security: true,
    }),
  ];
}
