// One task type, described once: its name and queue, its schemas, the failure codes its worker may
// report, its optional synchronous tool route with that route's rate-limit budget, and what the
// ledger keeps of its output. The gateway's routes, validation, rate limits and config, the OpenAPI
// document, the dev runner's queues, the compose check and the README's task table are all derived
// from the registry of these (tasks.ts). docs/adding-a-task.md is the recipe.
import type { Static, TObject, TSchema } from '@sinclair/typebox';

/** Requests one user may make on a route per fixed window, and why that figure. */
export interface RateBudget {
  points: number;
  windowS: number;
  /** The reason for the default, shown in the config reference. */
  why: string;
}

/** A cap on one string field of the input, in kilobytes of UTF-8, answered with 413 and `code`. */
export interface FieldSizeLimit {
  field: string;
  /** Name of the gateway setting under `tools.<id>` (NEUROAGENT_TOOLS__<ID>__<SETTING>). */
  setting: string;
  defaultKb: number;
  code: string;
}

/**
 * `POST <path>`: submit, wait up to the tool's timeout, answer 200 with the (mapped) output, 422
 * with the task's code when it failed, 409 when it was cancelled, or 202 with where to poll.
 */
export interface ToolRoute<Output = unknown> {
  /**
   * Key of the route's settings: NEUROAGENT_TOOLS__<ID>__TIMEOUT_S, NEUROAGENT_RATE_LIMIT__<ID>_POINTS
   * and the route's entry in GET /rate-limit.
   */
  id: string;
  path: `/tools/${string}`;
  /** OpenAPI operationId, e.g. runPython. */
  operationId: string;
  summary: string;
  /** Default of NEUROAGENT_TOOLS__<ID>__TIMEOUT_S: how long the route waits before answering 202. */
  defaultWaitS: number;
  rateLimit: RateBudget;
  maxFieldSize?: FieldSizeLimit;
  /** The 200 body; the task's output itself when absent. */
  response?: { schema: TSchema; map(output: Output): unknown };
}

/**
 * The task as a tool of the agent (docs/agent.md): the model sees the task name, this description
 * and the JSON Schema of `parameters`. Whatever it writes is still validated against the task's
 * own input schema, exactly as POST /tasks does.
 */
export interface AgentTool {
  /** What the model reads to decide when and how to call the tool. */
  description: string;
  /**
   * The arguments the model writes, an object schema (function parameters must be one): a part of
   * the input when the input is a union or has fields the agent fills in itself. Default: the input.
   */
  parameters?: TObject;
  /** An input field the agent sets to the thread id (run_python's thread_id), never the model. */
  threadField?: string;
}

/** What the ledger keeps of a successful output, besides status and times. */
export interface LedgerFields<Output = unknown> {
  tokenUsage?(output: Output): Record<string, unknown> | null;
  storageIds?(output: Output): readonly string[];
}

export interface TaskDefinition<
  Name extends string = string,
  Queue extends string = string,
  Input extends TSchema = TSchema,
  Output extends TSchema = TSchema,
  Code extends string = string,
> {
  /** Snake_case task name, the `task` of POST /tasks. */
  readonly name: Name;
  /** JetStream queue (subject token and consumer name); several tasks may share one. */
  readonly queue: Queue;
  /** One line, for the README's task table and the OpenAPI document. */
  readonly description: string;
  readonly input: Input;
  readonly output: Output;
  /** Codes of `error.code` this task's worker may fail with, besides COMMON_FAILURE_CODES. */
  readonly failureCodes: readonly Code[];
  readonly tool?: ToolRoute<Static<Output>>;
  /** Present when the agent may call the task as a tool. */
  readonly agent?: AgentTool;
  readonly ledger?: LedgerFields<Static<Output>>;
}

/** Keeps the literal types of name, queue and codes, so the registry can derive unions from them. */
export function defineTask<
  const Name extends string,
  const Queue extends string,
  Input extends TSchema,
  Output extends TSchema,
  const Code extends string = never,
>(def: TaskDefinition<Name, Queue, Input, Output, Code>): TaskDefinition<Name, Queue, Input, Output, Code> {
  if (!/^[a-z][a-z0-9_]{0,63}$/.test(def.name)) throw new Error(`task name ${def.name} is not snake_case`);
  if (!/^[a-z][a-z0-9_]{0,63}$/.test(def.queue)) throw new Error(`queue ${def.queue} is not snake_case`);
  if (def.tool && !/^[a-z][a-z0-9_]{0,63}$/.test(def.tool.id)) {
    throw new Error(`tool id ${def.tool.id} of ${def.name} is not snake_case`);
  }
  if (def.agent && !def.agent.parameters && (def.input as { type?: unknown }).type !== 'object') {
    throw new Error(`${def.name} is an agent tool: its input is not an object, so it needs agent.parameters`);
  }
  for (const code of def.failureCodes) {
    if (!/^[a-z][a-z0-9_]*$/.test(code))
      throw new Error(`failure code ${code} of ${def.name} is not snake_case`);
  }
  return Object.freeze(def);
}
