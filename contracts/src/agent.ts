// The agent's threads, messages, turns and turn events (docs/agent.md): the bodies of the /threads
// routes and the Server-Sent Events of a turn. A turn is one user message and everything the model
// did to answer it: its text, its tool calls (each one a task of the thread's owner) and their
// results. Imports only TypeBox and the shared error shape.
import { type Static, Type } from '@sinclair/typebox';
import { TokenConsumption } from './circuit-population-analysis.ts';
import { ErrorBody } from './error-body.ts';

/** Token usage of one model call, or of a whole turn: the original's per-message accounting. */
export const TokenUsage = Type.Object(
  {
    input_cached: TokenConsumption.properties.input_cached,
    input_noncached: TokenConsumption.properties.input_noncached,
    completion: TokenConsumption.properties.completion,
    model: Type.String({ description: 'The model that was called (the last one, for a turn)' }),
  },
  { $id: 'TokenUsage' },
);
export type TokenUsage = Static<typeof TokenUsage>;

export const TURN_STATUSES = ['running', 'completed', 'failed', 'cancelled'] as const;
export const TurnStatus = Type.Union(TURN_STATUSES.map((s) => Type.Literal(s)));
export type TurnStatus = Static<typeof TurnStatus>;

export const MESSAGE_ROLES = ['user', 'assistant', 'tool'] as const;
export const MessageRole = Type.Union(MESSAGE_ROLES.map((s) => Type.Literal(s)));
export type MessageRole = Static<typeof MessageRole>;

/** Why a completed turn stopped where it did. */
export const TURN_STOPS = ['answered', 'max_tool_rounds'] as const;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T, description: string) =>
  Type.Union([schema, Type.Null()], { description });

export const Turn = Type.Object(
  {
    id: Type.String(),
    thread_id: Type.String(),
    status: TurnStatus,
    started_at: Type.String({ format: 'date-time' }),
    finished_at: Nullable(Type.String({ format: 'date-time' }), 'null while the turn runs'),
    /** How failed and cancelled turns ended: turn_timeout, llm_error, cancelled, client_gone, … */
    error: Nullable(ErrorBody, 'Why the turn failed or was cancelled; null otherwise'),
    rounds: Type.Integer({ minimum: 0, description: 'Model calls that asked for tools' }),
    stop: Nullable(
      Type.Union(TURN_STOPS.map((s) => Type.Literal(s))),
      'answered: the model replied without tools; max_tool_rounds: the round cap made it answer',
    ),
    usage: Nullable(TokenUsage, 'Summed over every model call of the turn; null before the first'),
  },
  { $id: 'Turn' },
);
export type Turn = Static<typeof Turn>;

export const ToolCall = Type.Object(
  {
    id: Type.String({ description: "The model's id for the call" }),
    name: Type.String({ description: 'The tool, which is the task name' }),
    arguments: Type.String({ description: 'The arguments as the model wrote them (JSON text)' }),
    task_id: Nullable(Type.String(), 'The task the call ran as; null when it was refused before submitting'),
  },
  { $id: 'ToolCall' },
);
export type ToolCall = Static<typeof ToolCall>;

/** Statuses of a tool result: its task's terminal status, or `rejected` when no task ran. */
export const TOOL_RESULT_STATUSES = ['succeeded', 'failed', 'cancelled', 'rejected'] as const;
export const ToolResultStatus = Type.Union(TOOL_RESULT_STATUSES.map((s) => Type.Literal(s)));
export type ToolResultStatus = Static<typeof ToolResultStatus>;

export const Message = Type.Object(
  {
    id: Type.String(),
    thread_id: Type.String(),
    turn_id: Type.String(),
    seq: Type.Integer({ minimum: 1, description: 'Position in the thread, from 1' }),
    role: MessageRole,
    content: Nullable(
      Type.String(),
      'user: the question; assistant: its text; tool: the result as the model read it (JSON)',
    ),
    tool_calls: Type.Array(ToolCall, { description: 'assistant only; [] for the others' }),
    tool_call_id: Nullable(Type.String(), 'tool only: the call this result answers'),
    task_id: Nullable(Type.String(), 'tool only: the task that produced the result'),
    tool_status: Nullable(ToolResultStatus, 'tool only'),
    truncated: Type.Boolean({
      description: 'tool only: the result was longer than NEUROAGENT_AGENT__MAX_TOOL_RESULT_KB and was cut',
    }),
    usage: Nullable(TokenUsage, 'assistant only: the tokens of the model call that wrote it'),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Message' },
);
export type Message = Static<typeof Message>;

export const Thread = Type.Object(
  {
    id: Type.String(),
    title: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    turn: Nullable(Turn, "The thread's latest turn; null before the first message"),
  },
  { $id: 'Thread' },
);
export type Thread = Static<typeof Thread>;

export const THREAD_TITLE_MAX = 255;

export const ThreadCreate = Type.Object(
  { title: Type.Optional(Type.String({ maxLength: THREAD_TITLE_MAX, description: "Default 'New chat'" })) },
  { additionalProperties: false, $id: 'ThreadCreate' },
);
export type ThreadCreate = Static<typeof ThreadCreate>;

export const ThreadPatch = Type.Object(
  { title: Type.String({ minLength: 1, maxLength: THREAD_TITLE_MAX }) },
  { additionalProperties: false, $id: 'ThreadPatch' },
);
export type ThreadPatch = Static<typeof ThreadPatch>;

export const MessagePost = Type.Object(
  {
    content: Type.String({
      minLength: 1,
      description: 'The user message; at most NEUROAGENT_AGENT__MAX_MESSAGE_KB kilobytes',
    }),
  },
  { additionalProperties: false, $id: 'MessagePost' },
);
export type MessagePost = Static<typeof MessagePost>;

const NextCursor = Nullable(Type.String(), 'Pass as ?cursor= for the next page; null on the last page');

export const ThreadList = Type.Object(
  { items: Type.Array(Thread), next_cursor: NextCursor },
  { $id: 'ThreadList' },
);
export type ThreadList = Static<typeof ThreadList>;

export const MessageList = Type.Object(
  {
    items: Type.Array(Message, { description: 'Oldest first' }),
    next_cursor: NextCursor,
    turn: Nullable(Turn, "The thread's latest turn, so a client sees whether one still runs"),
  },
  { $id: 'MessageList' },
);
export type MessageList = Static<typeof MessageList>;

/** POST /threads/{id}/messages with Accept: application/json: the turn once it has ended. */
export const TurnResult = Type.Object(
  { turn: Turn, messages: Type.Array(Message, { description: "The turn's messages, the user's first" }) },
  { $id: 'TurnResult' },
);
export type TurnResult = Static<typeof TurnResult>;

// ------------------------------------------------------------------ turn events (SSE)

/**
 * The `event:` of each Server-Sent Event of a turn. `message` ends a completed turn and `error` a
 * failed or cancelled one; nothing follows either.
 */
export const TURN_EVENT_TYPES = ['turn', 'text', 'tool_call', 'tool_result', 'message', 'error'] as const;
export type TurnEventType = (typeof TURN_EVENT_TYPES)[number];

export function isTurnEventType(value: string): value is TurnEventType {
  return (TURN_EVENT_TYPES as readonly string[]).includes(value);
}

export const TurnStartedEvent = Type.Object(
  {
    turn_id: Type.String(),
    thread_id: Type.String(),
    message_id: Type.String({ description: "The user's message" }),
  },
  { $id: 'TurnStartedEvent' },
);
export const TextEvent = Type.Object(
  { delta: Type.String({ description: 'The next piece of the assistant text' }) },
  { $id: 'TextEvent' },
);
export const ToolCallEvent = Type.Composite(
  [ToolCall, Type.Object({ round: Type.Integer({ minimum: 1 }) })],
  {
    $id: 'ToolCallEvent',
  },
);
export const ToolResultEvent = Type.Object(
  {
    tool_call_id: Type.String(),
    task_id: Nullable(Type.String(), 'null when the call was refused before a task was submitted'),
    status: ToolResultStatus,
    result: Type.Optional(Type.Unknown({ description: "The task's output (succeeded only), uncut" })),
    error: Type.Optional(ErrorBody),
    truncated: Type.Boolean({ description: 'The copy fed back to the model was cut' }),
  },
  { $id: 'ToolResultEvent' },
);
export const MessageEvent = Type.Object(
  {
    message: Message,
    turn: Turn,
  },
  { $id: 'MessageEvent', description: "The turn's final assistant message, with the turn's usage" },
);
export const TurnErrorEvent = Type.Object(
  { turn: Turn, error: ErrorBody },
  { $id: 'TurnErrorEvent', description: 'The turn failed or was cancelled' },
);

export type TurnEventData = {
  turn: Static<typeof TurnStartedEvent>;
  text: Static<typeof TextEvent>;
  tool_call: Static<typeof ToolCallEvent>;
  tool_result: Static<typeof ToolResultEvent>;
  message: Static<typeof MessageEvent>;
  error: Static<typeof TurnErrorEvent>;
};

export function isFinalTurnEvent(type: string): boolean {
  return type === 'message' || type === 'error';
}
