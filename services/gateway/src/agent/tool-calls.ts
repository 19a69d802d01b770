// The agent's tools (docs/agent.md, "Tools"): their definitions, generated from the task contracts
// that carry an `agent` flag, and each call run as a task of the thread's owner through the same
// path as POST /tasks: the input schema, the `submit` rate limit, the ledger row before the
// publish, the PubAck, then the completion watch. A call that cannot run is answered with an
// error the model reads; nothing the model writes can fail the turn itself.
import {
  AGENT_TASKS,
  type AgentTask,
  type ErrorBody,
  isTerminal,
  type TaskName,
  type ToolResultStatus,
} from '@neuroagent/contracts';
import { AppError, newTaskId } from '@neuroagent/platform';
import type { CompletionWatch } from '../completion-watch.ts';
import { HttpError } from '../http-error.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { RateLimits } from '../rate-limit/limiter.ts';
import { SUBMIT_ROUTE } from '../rate-limit/settings.ts';
import { UNTIMED } from '../server-timing.ts';
import type { TaskSubmitter } from '../submission.ts';
import { checkTaskInput } from '../task-input.ts';
import { type RecordDeps, readRecord } from '../task-io.ts';
import type { ModelTool, ModelToolCall } from './model-client.ts';

/** A call checked and counted, ready to submit; or refused, with the error the model reads. */
export type PreparedCall =
  | { call: ModelToolCall; kind: 'submit'; task: TaskName; input: unknown; taskId: string }
  | { call: ModelToolCall; kind: 'reject'; error: ErrorBody };

export interface ToolOutcome {
  status: ToolResultStatus;
  taskId: string | null;
  result?: unknown;
  error?: ErrorBody;
}

export interface ToolCallDeps extends RecordDeps {
  submitter: TaskSubmitter;
  metrics: Pick<GatewayMetrics, 'tasksSubmitted'>;
  completions: CompletionWatch;
  limits: Pick<RateLimits, 'consume'>;
  cancel(taskId: string): Promise<void>;
}

export interface CallContext {
  owner: string;
  threadId: string;
  requestId?: string | undefined;
  /** Aborts when the turn stops: a running task is cancelled then. */
  signal: AbortSignal;
  /** Longest wait for this task. */
  timeoutMs: number;
}

export interface AgentTools {
  /** The definitions the model is given; [] when no tool is enabled. */
  readonly definitions: ModelTool[];
  prepare(call: ModelToolCall, owner: string, threadId: string): Promise<PreparedCall>;
  run(prepared: PreparedCall, ctx: CallContext): Promise<ToolOutcome>;
  /** The metric label of a tool name: the name when it is a tool, else `unknown`. */
  label(name: string): string;
}

/** A JSON Schema for the model: the TypeBox schema without its ids, which would name our components. */
export function modelSchema(schema: object): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema, (key, value) => (key === '$id' ? undefined : value)));
}

export function toolDefinition(def: AgentTask): ModelTool {
  return {
    type: 'function',
    function: {
      name: def.name,
      description: def.agent.description,
      parameters: modelSchema(def.agent.parameters ?? def.input),
    },
  };
}

const refuse = (
  call: ModelToolCall,
  code: string,
  message: string,
  details?: ErrorBody['details'],
): PreparedCall => ({
  call,
  kind: 'reject',
  error: { code, message, ...(details ? { details } : {}) },
});

export function createAgentTools(names: readonly string[], deps: ToolCallDeps): AgentTools {
  const enabled = new Map(
    AGENT_TASKS.filter((t) => names.includes(t.name)).map((t) => [t.name as string, t]),
  );

  async function waitFor(taskId: string, ending: ReturnType<CompletionWatch['expect']>, ctx: CallContext) {
    const ended = await ending.settled(ctx.timeoutMs, ctx.signal);
    if (ended) {
      const record = ending.record() ?? (await readRecord(deps, taskId));
      if (record && isTerminal(record.status)) return record;
    }
    return null;
  }

  return {
    definitions: [...enabled.values()].map(toolDefinition),

    label: (name) => (enabled.has(name) ? name : 'unknown'),

    async prepare(call, owner, threadId) {
      const def = enabled.get(call.name);
      if (!def) {
        return refuse(call, 'unknown_tool', `there is no tool named ${call.name.slice(0, 64)}`, [
          { path: '/name', message: `expected one of: ${[...enabled.keys()].join(', ')}` },
        ]);
      }
      let args: unknown;
      try {
        args = JSON.parse(call.arguments === '' ? '{}' : call.arguments);
      } catch {
        return refuse(call, 'invalid_arguments', 'the arguments are not valid JSON');
      }
      if (args === null || typeof args !== 'object' || Array.isArray(args)) {
        return refuse(call, 'invalid_arguments', 'the arguments must be a JSON object');
      }
      // The model never chooses the thread: a thread field it wrote is overwritten.
      const input = def.agent.threadField ? { ...args, [def.agent.threadField]: threadId } : args;
      try {
        checkTaskInput(def.name, input, '');
        await deps.limits.consume(SUBMIT_ROUTE, owner);
      } catch (err) {
        if (err instanceof HttpError) {
          const code = err.code === 'invalid_request' ? 'invalid_arguments' : err.code;
          return refuse(call, code, err.message, err.details);
        }
        throw err;
      }
      return { call, kind: 'submit', task: def.name, input, taskId: newTaskId() };
    },

    async run(prepared, ctx) {
      if (prepared.kind === 'reject') return { status: 'rejected', taskId: null, error: prepared.error };
      const { taskId } = prepared;
      if (ctx.signal.aborted) {
        return {
          status: 'cancelled',
          taskId: null,
          error: { code: 'cancelled', message: 'the turn stopped before the tool ran' },
        };
      }
      // Registered before the publish, so even an instant result is seen (completion-watch.ts).
      const ending = deps.completions.expect(taskId);
      try {
        try {
          const { queue } = await deps.submitter.submit(
            {
              taskId,
              task: prepared.task,
              input: prepared.input,
              owner: ctx.owner,
              threadId: ctx.threadId,
              requestId: ctx.requestId,
            },
            UNTIMED,
          );
          deps.metrics.tasksSubmitted.inc({ queue });
        } catch (err) {
          const code = err instanceof AppError ? err.code : 'internal';
          const message = err instanceof AppError ? err.message : 'the task could not be submitted';
          return { status: 'rejected', taskId, error: { code, message } };
        }
        const record = await waitFor(taskId, ending, ctx);
        if (record) {
          if (record.status === 'succeeded') return { status: 'succeeded', taskId, result: record.result };
          const error = record.error ?? { code: 'internal', message: `the task ended ${record.status}` };
          return { status: record.status === 'cancelled' ? 'cancelled' : 'failed', taskId, error };
        }
        // Not ended: the turn stopped or the tool's time ran out. The task must not run on unseen.
        await deps.cancel(taskId).catch(() => {});
        if (ctx.signal.aborted) {
          return {
            status: 'cancelled',
            taskId,
            error: { code: 'cancelled', message: 'the turn stopped before the tool ended' },
          };
        }
        return {
          status: 'cancelled',
          taskId,
          error: {
            code: 'tool_timeout',
            message: `the tool did not end within ${Math.round(ctx.timeoutMs / 1000)} s`,
          },
        };
      } finally {
        ending.release();
      }
    },
  };
}
