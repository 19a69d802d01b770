// The agent's threads, turns and messages in the ledger database (docs/agent.md). Every read is
// scoped to the owner, so another user's thread is exactly as absent as an unknown one. A turn
// owns its thread while it runs: it is claimed with a compare-and-set on `active_turn_id`, and
// every write of the turn's messages re-checks that claim in the same transaction, so a turn that
// lost its thread (deleted, or taken over after its gateway died) can never write into it.
// Never imports Koa, NATS or Redis.
import type { EntityManager, FilterQuery, MikroORM } from '@mikro-orm/core';
import type {
  Message,
  MessageRole,
  Thread,
  TokenUsage,
  ToolCall,
  ToolResultStatus,
  Turn,
  TurnStatus,
} from '@neuroagent/contracts';
import { AppError, newTaskId, ValidationError } from '@neuroagent/platform';
import { LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT } from '../ledger/ledger.ts';
import { MessageRow, ThreadRow, TurnRow } from '../ledger/thread-entities.ts';

export const DEFAULT_THREAD_TITLE = 'New chat';

/** The turn no longer owns its thread: the thread was deleted, or another turn took it over. */
export class TurnLostError extends AppError {
  constructor(turnId: string) {
    super('turn_lost', `turn ${turnId} no longer owns its thread`);
    this.name = 'TurnLostError';
  }
}

/** A message as the turn writes it; the store assigns id, seq and time. */
export interface NewMessage {
  role: MessageRole;
  content: string | null;
  toolCalls?: ToolCall[];
  toolCallId?: string;
  taskId?: string | null;
  toolStatus?: ToolResultStatus;
  truncated?: boolean;
  usage?: TokenUsage | null;
}

export interface TurnEnd {
  status: Exclude<TurnStatus, 'running'>;
  error?: { code: string; message: string } | null;
  stop?: 'answered' | 'max_tool_rounds' | null;
  rounds: number;
  usage: TokenUsage | null;
}

/** What a started turn knows of itself. */
export interface StartedTurn {
  turn: Turn;
  userMessage: Message;
  /** Messages of the thread, the user's new one included: the next one gets seq count + 1. */
  count: number;
}

export type StartResult = StartedTurn | 'not_found' | 'busy';

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface ThreadStore {
  create(owner: string, title?: string): Promise<Thread>;
  list(owner: string, options?: { limit?: number; cursor?: string }): Promise<Page<Thread>>;
  get(owner: string, id: string): Promise<Thread | null>;
  rename(owner: string, id: string, title: string): Promise<Thread | null>;
  /** 'busy' while a turn runs: it must be cancelled first. */
  remove(owner: string, id: string, now?: Date): Promise<'deleted' | 'not_found' | 'busy'>;
  messages(
    owner: string,
    threadId: string,
    options?: { limit?: number; cursor?: string },
  ): Promise<(Page<Message> & { turn: Turn | null }) | null>;
  /** The latest `max` messages of a thread, oldest first: the model's context. */
  history(threadId: string, max: number): Promise<Message[]>;
  /**
   * Claims the thread for a new turn and stores the user's message, in one transaction. A running
   * turn past its deadline was abandoned (its gateway died): it is ended as failed, turn_interrupted.
   */
  startTurn(
    owner: string,
    threadId: string,
    content: string,
    deadline: Date,
    now?: Date,
  ): Promise<StartResult>;
  /** Appends complete messages of a running turn; `count` is the thread's count before them. */
  append(turn: Pick<Turn, 'id' | 'thread_id'>, count: number, messages: NewMessage[]): Promise<Message[]>;
  /** Appends the last messages, records how the turn ended and releases the thread, atomically. */
  finishTurn(
    turn: Pick<Turn, 'id' | 'thread_id'>,
    count: number,
    end: TurnEnd,
    messages?: NewMessage[],
  ): Promise<{ turn: Turn; messages: Message[] }>;
  turn(owner: string, turnId: string): Promise<Turn | null>;
  /** The thread's running turn, when there is one (also one past its deadline). */
  activeTurn(owner: string, threadId: string): Promise<Turn | null>;
  /** Ends an abandoned running turn (its gateway is gone) as `end.status`, if it still runs. */
  abandon(turnId: string, end: Pick<TurnEnd, 'status' | 'error'>, now?: Date): Promise<boolean>;
  turnMessages(turnId: string): Promise<Message[]>;
}

const clampLimit = (limit: number | undefined) =>
  Math.min(Math.max(Math.trunc(limit ?? LIST_DEFAULT_LIMIT), 1), LIST_MAX_LIMIT);

function badCursor(): ValidationError {
  return new ValidationError('invalid cursor', [{ path: '/cursor', message: 'not a cursor from this API' }]);
}

export function createThreadStore(orm: MikroORM, clock: () => Date = () => new Date()): ThreadStore {
  const fork = (): EntityManager => orm.em.fork();

  async function latestTurns(em: EntityManager, threads: ThreadRow[]): Promise<Map<string, Turn>> {
    const ids = threads
      .map((t) => t.lastTurnId)
      .filter((id): id is string => id !== null && id !== undefined);
    if (ids.length === 0) return new Map();
    const rows = await em.find(TurnRow, { id: { $in: ids } });
    return new Map(rows.map((r) => [r.threadId, toTurn(r)]));
  }

  async function threadView(em: EntityManager, row: ThreadRow): Promise<Thread> {
    const turns = await latestTurns(em, [row]);
    return toThread(row, turns.get(row.id) ?? null);
  }

  function messageRows(
    turn: Pick<Turn, 'id' | 'thread_id'>,
    count: number,
    messages: NewMessage[],
    at: Date,
  ) {
    return messages.map((m, i) => ({
      id: newTaskId(),
      threadId: turn.thread_id,
      turnId: turn.id,
      seq: count + i + 1,
      role: m.role,
      content: m.content,
      toolCalls: m.toolCalls ?? [],
      toolCallId: m.toolCallId ?? null,
      taskId: m.taskId ?? null,
      toolStatus: m.toolStatus ?? null,
      truncated: m.truncated ?? false,
      usage: m.usage ?? null,
      createdAt: at,
    }));
  }

  /** Inserts the messages if the turn still owns the thread; throws TurnLostError otherwise. */
  async function appendIn(
    em: EntityManager,
    turn: Pick<Turn, 'id' | 'thread_id'>,
    count: number,
    messages: NewMessage[],
    at: Date,
  ): Promise<Message[]> {
    const claimed = await em.nativeUpdate(
      ThreadRow,
      { id: turn.thread_id, activeTurnId: turn.id, messageCount: count },
      { messageCount: count + messages.length, updatedAt: at },
    );
    if (claimed === 0) throw new TurnLostError(turn.id);
    const rows = messageRows(turn, count, messages, at);
    if (rows.length > 0) await em.insertMany(MessageRow, rows);
    return rows.map((r) => toMessage(r as MessageRow));
  }

  return {
    async create(owner, title) {
      const em = fork();
      const now = clock();
      const row = em.create(ThreadRow, {
        id: newTaskId(),
        owner,
        title: title ?? DEFAULT_THREAD_TITLE,
        createdAt: now,
        updatedAt: now,
        activeTurnId: null,
        activeTurnDeadline: null,
        lastTurnId: null,
        messageCount: 0,
      });
      await em.flush();
      return toThread(row, null);
    },

    async list(owner, options = {}) {
      const em = fork();
      const limit = clampLimit(options.limit);
      const where: FilterQuery<ThreadRow> = { owner };
      if (options.cursor) {
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(options.cursor)) throw badCursor();
        where.id = { $lt: options.cursor };
      }
      const rows = await em.find(ThreadRow, where, { orderBy: { id: 'desc' }, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const turns = await latestTurns(em, page);
      const last = page.at(-1);
      return {
        items: page.map((r) => toThread(r, turns.get(r.id) ?? null)),
        next_cursor: rows.length > limit && last ? last.id : null,
      };
    },

    async get(owner, id) {
      const em = fork();
      const row = await em.findOne(ThreadRow, { id, owner });
      return row ? threadView(em, row) : null;
    },

    async rename(owner, id, title) {
      const em = fork();
      const row = await em.findOne(ThreadRow, { id, owner });
      if (!row) return null;
      row.title = title;
      row.updatedAt = clock();
      await em.flush();
      return threadView(em, row);
    },

    async remove(owner, id, now = clock()) {
      return fork().transactional(async (em) => {
        const row = await em.findOne(ThreadRow, { id, owner });
        if (!row) return 'not_found' as const;
        if (row.activeTurnId && row.activeTurnDeadline && row.activeTurnDeadline > now)
          return 'busy' as const;
        // Conditional on the claim read above, so a turn starting meanwhile keeps its thread.
        const deleted = await em.nativeDelete(ThreadRow, {
          id,
          owner,
          activeTurnId: row.activeTurnId ?? null,
        });
        if (deleted === 0) return 'busy' as const;
        await em.nativeDelete(MessageRow, { threadId: id });
        await em.nativeDelete(TurnRow, { threadId: id });
        return 'deleted' as const;
      });
    },

    async messages(owner, threadId, options = {}) {
      const em = fork();
      const thread = await em.findOne(ThreadRow, { id: threadId, owner });
      if (!thread) return null;
      const limit = clampLimit(options.limit);
      const where: FilterQuery<MessageRow> = { threadId };
      if (options.cursor) {
        const seq = /^\d{1,9}$/.test(options.cursor) ? Number(options.cursor) : Number.NaN;
        if (!Number.isSafeInteger(seq)) throw badCursor();
        where.seq = { $gt: seq };
      }
      const rows = await em.find(MessageRow, where, { orderBy: { seq: 'asc' }, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const turns = await latestTurns(em, [thread]);
      const last = page.at(-1);
      return {
        items: page.map(toMessage),
        next_cursor: rows.length > limit && last ? String(last.seq) : null,
        turn: turns.get(thread.id) ?? null,
      };
    },

    async history(threadId, max) {
      const rows = await fork().find(MessageRow, { threadId }, { orderBy: { seq: 'desc' }, limit: max });
      return rows.reverse().map(toMessage);
    },

    async startTurn(owner, threadId, content, deadline, now = clock()) {
      return fork().transactional(async (em): Promise<StartResult> => {
        const thread = await em.findOne(ThreadRow, { id: threadId, owner });
        if (!thread) return 'not_found';
        const previous = thread.activeTurnId ?? null;
        if (previous && thread.activeTurnDeadline && thread.activeTurnDeadline > now) return 'busy';
        const turnId = newTaskId();
        // Compare-and-set: another gateway that started a turn since the read above wins.
        const claimed = await em.nativeUpdate(
          ThreadRow,
          { id: threadId, activeTurnId: previous, messageCount: thread.messageCount },
          {
            activeTurnId: turnId,
            activeTurnDeadline: deadline,
            lastTurnId: turnId,
            messageCount: thread.messageCount + 1,
            updatedAt: now,
          },
        );
        if (claimed === 0) return 'busy';
        if (previous) {
          await em.nativeUpdate(
            TurnRow,
            { id: previous, status: 'running' },
            {
              status: 'failed',
              finishedAt: now,
              errorCode: 'turn_interrupted',
              errorMessage: 'the gateway running this turn stopped before it ended',
            },
          );
        }
        const turnRow = {
          id: turnId,
          threadId,
          owner,
          status: 'running' as TurnStatus,
          startedAt: now,
          finishedAt: null,
          deadlineAt: deadline,
          errorCode: null,
          errorMessage: null,
          rounds: 0,
          stop: null,
          usage: null,
        };
        await em.insert(TurnRow, turnRow);
        const turn = toTurn(turnRow as TurnRow);
        const [row] = messageRows(turn, thread.messageCount, [{ role: 'user', content }], now);
        await em.insert(MessageRow, row);
        return { turn, userMessage: toMessage(row as MessageRow), count: thread.messageCount + 1 };
      });
    },

    async append(turn, count, messages) {
      return fork().transactional((em) => appendIn(em, turn, count, messages, clock()));
    },

    async finishTurn(turn, count, end, messages = []) {
      return fork().transactional(async (em) => {
        const at = clock();
        const written = await appendIn(em, turn, count, messages, at);
        await em.nativeUpdate(
          TurnRow,
          { id: turn.id, status: 'running' },
          {
            status: end.status,
            finishedAt: at,
            errorCode: end.error?.code ?? null,
            errorMessage: end.error?.message ?? null,
            stop: end.stop ?? null,
            rounds: end.rounds,
            usage: end.usage,
          },
        );
        await em.nativeUpdate(
          ThreadRow,
          { id: turn.thread_id, activeTurnId: turn.id },
          { activeTurnId: null, activeTurnDeadline: null, updatedAt: at },
        );
        const row = await em.findOneOrFail(TurnRow, { id: turn.id });
        return { turn: toTurn(row), messages: written };
      });
    },

    async turn(owner, turnId) {
      const row = await fork().findOne(TurnRow, { id: turnId, owner });
      return row ? toTurn(row) : null;
    },

    async activeTurn(owner, threadId) {
      const em = fork();
      const thread = await em.findOne(ThreadRow, { id: threadId, owner });
      if (!thread?.activeTurnId) return null;
      const row = await em.findOne(TurnRow, { id: thread.activeTurnId, status: 'running' });
      return row ? toTurn(row) : null;
    },

    async abandon(turnId, end, now = clock()) {
      return fork().transactional(async (em) => {
        const row = await em.findOne(TurnRow, { id: turnId, status: 'running' });
        if (!row) return false;
        const changed = await em.nativeUpdate(
          TurnRow,
          { id: turnId, status: 'running' },
          {
            status: end.status,
            finishedAt: now,
            errorCode: end.error?.code ?? null,
            errorMessage: end.error?.message ?? null,
          },
        );
        await em.nativeUpdate(
          ThreadRow,
          { id: row.threadId, activeTurnId: turnId },
          { activeTurnId: null, activeTurnDeadline: null, updatedAt: now },
        );
        return changed > 0;
      });
    },

    async turnMessages(turnId) {
      const rows = await fork().find(MessageRow, { turnId }, { orderBy: { seq: 'asc' } });
      return rows.map(toMessage);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Row → API shape
// ---------------------------------------------------------------------------------------------

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

export function toTurn(row: TurnRow): Turn {
  return {
    id: row.id,
    thread_id: row.threadId,
    status: row.status,
    started_at: row.startedAt.toISOString(),
    finished_at: iso(row.finishedAt),
    error: row.errorCode ? { code: row.errorCode, message: row.errorMessage ?? row.errorCode } : null,
    rounds: row.rounds,
    stop: (row.stop as Turn['stop']) ?? null,
    usage: row.usage ?? null,
  };
}

function toThread(row: ThreadRow, turn: Turn | null): Thread {
  return {
    id: row.id,
    title: row.title,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    turn,
  };
}

function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    thread_id: row.threadId,
    turn_id: row.turnId,
    seq: row.seq,
    role: row.role,
    content: row.content ?? null,
    tool_calls: row.toolCalls ?? [],
    tool_call_id: row.toolCallId ?? null,
    task_id: row.taskId ?? null,
    tool_status: row.toolStatus ?? null,
    truncated: Boolean(row.truncated),
    usage: row.usage ?? null,
    created_at: row.createdAt.toISOString(),
  };
}
