// One agent turn (docs/agent.md, "How a turn runs"): the thread's history goes to the model; its
// text streams out as events; its tool calls run as tasks, concurrently, and their results go back
// to it; until it answers without tools, the round cap makes it answer, or the turn is stopped.
//
// What is stored, and when: the user's message with the turn's start; each assistant message once
// its stream has ended; a round's tool results together once all have ended (or were cancelled).
// So the thread never holds a half-written message, and every stored tool call has its result,
// which the next turn's model call requires. A stopped turn's streamed text is dropped.
//
// A turn stops on DELETE /threads/{id}/turn (any gateway: NATS, with a Redis flag behind it), when
// no client has streamed it for the disconnect grace, at its time limit, or at shutdown. Its
// running tasks are cancelled through the task cancel path.
import type { Message, TokenUsage, ToolCall, Turn } from '@neuroagent/contracts';
import { AppError, type Logger } from '@neuroagent/platform';
import { HttpError } from '../http-error.ts';
import type { ModelClient, ModelMessage, ModelReply } from './model-client.ts';
import { addUsage, ModelAborted, ModelError } from './model-client.ts';
import type { AgentSettings } from './settings.ts';
import type { NewMessage, StartedTurn, ThreadStore, TurnEnd } from './thread-store.ts';
import { TurnLostError } from './thread-store.ts';
import type { AgentTools, PreparedCall, ToolOutcome } from './tool-calls.ts';
import type { TurnControl } from './turn-control.ts';
import type { TurnEventLog } from './turn-events.ts';

/** Why a turn was stopped before it ended on its own. */
export type StopReason = 'cancelled' | 'client_gone' | 'turn_timeout' | 'gateway_shutdown';

const STOPS: Record<StopReason, { status: 'cancelled' | 'failed'; message: string }> = {
  cancelled: { status: 'cancelled', message: 'the turn was cancelled' },
  client_gone: { status: 'cancelled', message: 'no client streamed the turn within the disconnect grace' },
  turn_timeout: { status: 'failed', message: 'the turn ran out of time (NEUROAGENT_AGENT__TURN_TIMEOUT_S)' },
  gateway_shutdown: { status: 'failed', message: 'the gateway running the turn shut down' },
};

export interface TurnRunnerDeps {
  store: ThreadStore;
  model: ModelClient;
  tools: AgentTools;
  events: TurnEventLog;
  control: TurnControl;
  settings: AgentSettings;
  /** Called once per turn that ended, with its wall time less model and tool time, and its tool calls. */
  observe?(
    turn: Turn,
    overheadMs: number,
    toolCalls: number,
    outcomes: { tool: string; status: string }[],
  ): void;
  log: Logger;
}

export interface TurnHandle {
  started: StartedTurn;
  /** Settles once the turn has ended and is stored; never rejects. */
  done: Promise<{ turn: Turn; messages: Message[] }>;
  stop(reason: StopReason): void;
  /** The starting request's client went away before the turn ended. */
  detach(): void;
}

/** The turn stopped after its tools ended: their results are stored with the turn's end. */
class StoppedWithResults extends AppError {
  readonly results: NewMessage[];

  constructor(results: NewMessage[]) {
    super('aborted', 'the turn stopped while its tools ran');
    this.name = 'StoppedWithResults';
    this.results = results;
  }
}

interface Round {
  assistant: NewMessage;
  prepared: PreparedCall[];
}

const TRUNCATION_MARK = (shown: number, total: number) =>
  `\n[truncated by the gateway: ${shown} of ${total} bytes shown]`;

/** The JSON the model reads of a tool outcome, cut to `maxBytes` with the cut marked. */
export function toolResultText(outcome: ToolOutcome, maxBytes: number): { text: string; truncated: boolean } {
  const body =
    outcome.status === 'succeeded'
      ? { status: 'succeeded', task_id: outcome.taskId, result: outcome.result ?? null }
      : { status: outcome.status, task_id: outcome.taskId, error: outcome.error ?? null };
  const full = JSON.stringify(body);
  const bytes = Buffer.from(full, 'utf8');
  if (bytes.length <= maxBytes) return { text: full, truncated: false };
  // The marker fits in the cap too (its figures are at most as long as the total's). Cut on a
  // character boundary: never half a UTF-8 sequence.
  const room = Buffer.byteLength(TRUNCATION_MARK(bytes.length, bytes.length));
  let end = Math.max(0, maxBytes - room);
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return {
    text: bytes.subarray(0, end).toString('utf8') + TRUNCATION_MARK(end, bytes.length),
    truncated: true,
  };
}

const NO_RESULT = JSON.stringify({
  status: 'cancelled',
  error: { code: 'cancelled', message: 'the turn stopped before this tool ended' },
});

/** The stored thread as the model's messages; a tool call without a stored result gets one. */
export function modelMessages(system: string, history: Message[]): ModelMessage[] {
  const out: ModelMessage[] = [{ role: 'system', content: system }];
  // The oldest messages may have been cut off by the history cap: never start on a tool result.
  let start = history.findIndex((m) => m.role === 'user');
  if (start < 0) start = history.length;
  let open: string[] = [];
  const closeOpen = () => {
    for (const id of open) out.push(toolParam(id, NO_RESULT));
    open = [];
  };
  for (const m of history.slice(start)) {
    if (m.role === 'tool') {
      if (m.tool_call_id && open.includes(m.tool_call_id)) {
        open = open.filter((id) => id !== m.tool_call_id);
        out.push(toolParam(m.tool_call_id, m.content));
      }
      continue;
    }
    closeOpen();
    if (m.role === 'user') out.push({ role: 'user', content: m.content ?? '' });
    else {
      out.push(assistantParam(m.content, m.tool_calls));
      open = m.tool_calls.map((c) => c.id);
    }
  }
  closeOpen();
  return out;
}

function assistantParam(content: string | null, calls: readonly ToolCall[]): ModelMessage {
  if (calls.length === 0) return { role: 'assistant', content: content ?? '' };
  return {
    role: 'assistant',
    content,
    tool_calls: calls.map((c) => ({
      id: c.id,
      type: 'function',
      function: { name: c.name, arguments: c.arguments },
    })),
  };
}

function toolParam(callId: string, content: string | null): ModelMessage {
  return { role: 'tool', tool_call_id: callId, content: content ?? '' };
}

export function createTurnRunner(deps: TurnRunnerDeps) {
  const { store, model, tools, events, settings, log } = deps;
  const running = new Map<string, TurnHandle>();
  const maxToolBytes = settings.max_tool_result_kb * 1024;

  function run(started: StartedTurn, owner: string, requestId: string | undefined): TurnHandle {
    const { turn } = started;
    const ac = new AbortController();
    let reason = null as StopReason | null;
    const stop = (why: StopReason) => {
      if (reason !== null) return;
      reason = why;
      ac.abort();
    };
    const deadline = Date.parse(turn.started_at) + settings.turn_timeout_s * 1000;
    const timer = setTimeout(() => stop('turn_timeout'), Math.max(0, deadline - Date.now()));
    const unlisten = deps.control.listen(turn.id, () => stop('cancelled'));
    let presence: NodeJS.Timeout | undefined;
    const writer = events.writer(turn.id, settings.turn_timeout_s);
    const tl = log.child({ turnId: turn.id, threadId: turn.thread_id });
    const began = performance.now();
    let waitedMs = 0;
    let count = started.count;
    let rounds = 0;
    let usage: TokenUsage | null = null;
    const outcomes: { tool: string; status: string }[] = [];
    // The current round's tool results, so a stop mid-round still stores one per call.
    let unanswered = null as Round | null;

    const end = async (result: TurnEnd, last: NewMessage[]): Promise<{ turn: Turn; messages: Message[] }> => {
      const finished = await store.finishTurn(turn, count, result, last);
      count += last.length;
      return finished;
    };

    async function timed<T>(work: Promise<T>): Promise<T> {
      const t0 = performance.now();
      try {
        return await work;
      } finally {
        waitedMs += performance.now() - t0;
      }
    }

    async function callModel(messages: ModelMessage[], withTools: boolean): Promise<ModelReply> {
      const defs = withTools && tools.definitions.length > 0 ? tools.definitions : undefined;
      return timed(model.stream(messages, defs, (delta) => writer.text(delta), ac.signal));
    }

    async function toolRound(reply: ModelReply): Promise<Round> {
      const accepted = reply.toolCalls.slice(0, settings.max_parallel_tool_calls);
      const prepared: PreparedCall[] = await Promise.all(
        reply.toolCalls.map((call, i) =>
          i < accepted.length
            ? tools.prepare(call, owner, turn.thread_id)
            : Promise.resolve<PreparedCall>({
                call,
                kind: 'reject',
                error: {
                  code: 'too_many_tool_calls',
                  message: `at most ${settings.max_parallel_tool_calls} tool calls per reply run (NEUROAGENT_AGENT__MAX_PARALLEL_TOOL_CALLS)`,
                },
              }),
        ),
      );
      const toolCalls: ToolCall[] = prepared.map((p) => ({
        id: p.call.id,
        name: p.call.name,
        arguments: p.call.arguments,
        task_id: p.kind === 'submit' ? p.taskId : null,
      }));
      const assistant: NewMessage = {
        role: 'assistant',
        content: reply.content || null,
        toolCalls,
        usage: reply.usage,
      };
      await store.append(turn, count, [assistant]);
      count += 1;
      return { assistant, prepared };
    }

    async function runTools(round: Round): Promise<NewMessage[]> {
      const timeoutMs = Math.min(settings.tool_timeout_s * 1000, Math.max(0, deadline - Date.now()));
      const results = await timed(
        Promise.all(
          round.prepared.map(async (p, i) => {
            const call = round.assistant.toolCalls?.[i] as ToolCall;
            void writer.emit('tool_call', { ...call, round: rounds });
            const outcome = await tools.run(p, {
              owner,
              threadId: turn.thread_id,
              requestId,
              signal: ac.signal,
              timeoutMs,
            });
            outcomes.push({ tool: tools.label(call.name), status: outcome.status });
            const { text, truncated } = toolResultText(outcome, maxToolBytes);
            void writer.emit('tool_result', {
              tool_call_id: call.id,
              task_id: outcome.taskId,
              status: outcome.status,
              ...(outcome.status === 'succeeded' ? { result: outcome.result ?? null } : {}),
              ...(outcome.error ? { error: outcome.error } : {}),
              truncated,
            });
            return toolMessage(call, outcome.status, outcome.taskId, text, truncated);
          }),
        ),
      );
      return results;
    }

    /** Results for a round's calls that have none: the turn stopped before they ran. */
    function unansweredResults(round: Round, why: string): NewMessage[] {
      return (round.assistant.toolCalls ?? []).map((call) => {
        const outcome: ToolOutcome = {
          status: 'cancelled',
          taskId: call.task_id,
          error: { code: 'cancelled', message: why },
        };
        const { text, truncated } = toolResultText(outcome, maxToolBytes);
        return toolMessage(call, 'cancelled', call.task_id, text, truncated);
      });
    }

    async function loop(): Promise<{ turn: Turn; messages: Message[] }> {
      await writer.emit('turn', {
        turn_id: turn.id,
        thread_id: turn.thread_id,
        message_id: started.userMessage.id,
      });
      const history = await store.history(turn.thread_id, settings.max_history_messages);
      const messages = modelMessages(settings.system_prompt, history);
      for (;;) {
        if (!reason && (await deps.control.requested(turn.id))) stop('cancelled');
        if (reason) throw new ModelAborted();
        const withTools = rounds < settings.max_tool_rounds;
        const reply = await callModel(messages, withTools);
        usage = addUsage(usage, reply.usage);
        if (!withTools || reply.toolCalls.length === 0 || tools.definitions.length === 0) {
          await writer.flush();
          const capped = rounds >= settings.max_tool_rounds && settings.max_tool_rounds > 0;
          return end({ status: 'completed', stop: capped ? 'max_tool_rounds' : 'answered', rounds, usage }, [
            { role: 'assistant', content: reply.content, usage: reply.usage },
          ]);
        }
        rounds += 1;
        const round = await toolRound(reply);
        unanswered = round;
        const results = await runTools(round);
        if (reason) {
          // Stopped while the tools ran: their results (cancelled ones too) close the round.
          unanswered = null;
          throw new StoppedWithResults(results);
        }
        await store.append(turn, count, results);
        count += results.length;
        unanswered = null;
        messages.push(
          assistantParam(round.assistant.content, round.assistant.toolCalls ?? []),
          ...results.map((r) => toolParam(r.toolCallId ?? '', r.content)),
        );
      }
    }

    const done = (async () => {
      try {
        return await loop();
      } catch (err) {
        const last: NewMessage[] =
          err instanceof StoppedWithResults
            ? err.results
            : unanswered
              ? unansweredResults(unanswered, 'the turn stopped before the tool ran')
              : [];
        if (err instanceof TurnLostError) {
          tl.warn('the turn lost its thread; it stops without writing');
          return {
            turn: { ...turn, status: 'failed' as const, error: { code: err.code, message: err.message } },
            messages: [],
          };
        }
        const stopInfo = reason ? STOPS[reason] : null;
        const code = reason ?? (err instanceof AppError ? err.code : 'internal');
        const message =
          stopInfo?.message ??
          (err instanceof ModelError || err instanceof AppError ? err.message : 'the turn failed');
        if (!reason && !(err instanceof ModelError)) tl.error({ err }, 'turn failed');
        try {
          return await end(
            { status: stopInfo?.status ?? 'failed', error: { code, message }, rounds, usage },
            last,
          );
        } catch (writeErr) {
          tl.error({ err: writeErr }, 'could not store how the turn ended; it is ended at its deadline');
          return { turn: { ...turn, status: 'failed' as const, error: { code, message } }, messages: [] };
        }
      }
    })().then(async (finished) => {
      clearTimeout(timer);
      clearTimeout(presence);
      unlisten();
      running.delete(turn.id);
      await writer.flush();
      if (finished.turn.status === 'completed') {
        const message = finished.messages.at(-1) as Message;
        await writer.emit('message', { message, turn: finished.turn });
      } else {
        const error = finished.turn.error ?? { code: 'internal', message: 'the turn failed' };
        await writer.emit('error', { turn: finished.turn, error });
      }
      await writer.finish();
      const calls = outcomes.length;
      const overhead = performance.now() - began - waitedMs;
      deps.observe?.(finished.turn, overhead, calls, outcomes);
      tl.info(
        {
          status: finished.turn.status,
          code: finished.turn.error?.code,
          rounds,
          toolCalls: calls,
          ms: Math.round(performance.now() - began),
          overheadMs: Math.round(overhead * 10) / 10,
        },
        'turn ended',
      );
      return finished;
    });

    /** The client that started the turn is gone: stop unless someone resumes within the grace. */
    const detach = () => {
      const graceMs = settings.disconnect_grace_s * 1000;
      if (graceMs <= 0) {
        stop('client_gone');
        return;
      }
      const check = async () => {
        if (reason !== null || !running.has(turn.id)) return;
        if (await events.watched(turn.id)) presence = setTimeout(check, graceMs);
        else stop('client_gone');
      };
      presence = setTimeout(check, graceMs);
    };

    const handle: TurnHandle = { started, done, stop, detach };
    running.set(turn.id, handle);
    return handle;
  }

  /** Starts a turn of the owner's thread: 404 for a thread that is not theirs, 409 while one runs. */
  async function begin(
    owner: string,
    threadId: string,
    content: string,
    requestId?: string,
  ): Promise<TurnHandle> {
    const deadline = new Date(Date.now() + settings.turn_timeout_s * 1000);
    const started = await store.startTurn(owner, threadId, content, deadline);
    if (started === 'not_found') throw new HttpError(404, 'thread_not_found', `no thread ${threadId}`);
    if (started === 'busy') {
      throw new HttpError(
        409,
        'turn_in_progress',
        'a turn of this thread is running; wait for it or cancel it (DELETE /threads/{id}/turn)',
      );
    }
    return run(started, owner, requestId);
  }

  return {
    begin,
    run,
    /** Stops a turn this process runs; false when it runs elsewhere (or has ended). */
    stop(turnId: string, reason: StopReason): boolean {
      const handle = running.get(turnId);
      handle?.stop(reason);
      return handle !== undefined;
    },
    get(turnId: string): TurnHandle | undefined {
      return running.get(turnId);
    },
    count: () => running.size,
    /** Stops every turn (their tasks are cancelled) and waits until each is stored. */
    async close(): Promise<void> {
      const all = [...running.values()];
      for (const h of all) h.stop('gateway_shutdown');
      await Promise.all(all.map((h) => h.done));
    },
  };
}

export type TurnRunner = ReturnType<typeof createTurnRunner>;

function toolMessage(
  call: ToolCall,
  status: ToolOutcome['status'],
  taskId: string | null,
  text: string,
  truncated: boolean,
): NewMessage {
  return { role: 'tool', content: text, toolCallId: call.id, taskId, toolStatus: status, truncated };
}
