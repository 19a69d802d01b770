// The agent's tables in the ledger database (docs/agent.md): `threads`, `turns` and `messages`.
// A thread holds at most one running turn at a time (`active_turn_id`, claimed with one
// conditional UPDATE, so two gateways cannot start two turns of one thread). A message row is
// written only once it is complete: the model's streamed text is never stored half-way. Any change
// here needs a new migration for BOTH dialects in ./migrations/; the ledger test fails when
// entities and migrations disagree. Leaf module: imports only @mikro-orm/core and contracts types.
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import type { MessageRole, TokenUsage, ToolCall, ToolResultStatus, TurnStatus } from '@neuroagent/contracts';

export const ThreadRow = defineEntity({
  name: 'ThreadRow',
  tableName: 'threads',
  properties: {
    // UUIDv7, minted by the gateway: time-ordered, so GET /threads pages on the id alone.
    id: p.string().length(64).primary(),
    owner: p.string().length(255),
    title: p.string().length(255),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    /** The running turn; null when none runs. */
    activeTurnId: p.string().length(64).nullable(),
    /** When the running turn must have ended; past it, the turn was abandoned (its gateway died). */
    activeTurnDeadline: p.datetime().nullable(),
    /** The latest turn, running or not: what GET /threads shows of each thread. */
    lastTurnId: p.string().length(64).nullable(),
    /** Messages so far: the next message's seq is this plus one. */
    messageCount: p.integer().default(0),
  },
  indexes: [{ name: 'threads_owner_id_idx', columns: [{ name: 'owner' }, { name: 'id', sort: 'DESC' }] }],
});
export type ThreadRow = InferEntity<typeof ThreadRow>;

export const TurnRow = defineEntity({
  name: 'TurnRow',
  tableName: 'turns',
  properties: {
    id: p.string().length(64).primary(),
    threadId: p.string().length(64),
    owner: p.string().length(255),
    status: p.string().length(16).$type<TurnStatus>(),
    startedAt: p.datetime(),
    finishedAt: p.datetime().nullable(),
    deadlineAt: p.datetime(),
    errorCode: p.string().length(64).nullable(),
    errorMessage: p.text().nullable(),
    rounds: p.integer().default(0),
    stop: p.string().length(32).nullable(),
    usage: p.json<TokenUsage>().nullable(),
  },
  indexes: [
    {
      name: 'turns_thread_started_idx',
      columns: [{ name: 'thread_id' }, { name: 'started_at', sort: 'DESC' }],
    },
  ],
});
export type TurnRow = InferEntity<typeof TurnRow>;

export const MessageRow = defineEntity({
  name: 'MessageRow',
  tableName: 'messages',
  properties: {
    id: p.string().length(64).primary(),
    threadId: p.string().length(64),
    turnId: p.string().length(64),
    seq: p.integer(),
    role: p.string().length(16).$type<MessageRole>(),
    content: p.text().nullable(),
    toolCalls: p.json<ToolCall[]>().defaultRaw(`'[]'`),
    toolCallId: p.string().length(128).nullable(),
    taskId: p.string().length(64).nullable(),
    toolStatus: p.string().length(16).$type<ToolResultStatus>().nullable(),
    truncated: p.boolean().default(false),
    usage: p.json<TokenUsage>().nullable(),
    createdAt: p.datetime(),
  },
  uniques: [{ name: 'messages_thread_seq_uniq', properties: ['threadId', 'seq'] }],
  indexes: [{ name: 'messages_turn_idx', properties: ['turnId'] }],
});
export type MessageRow = InferEntity<typeof MessageRow>;
