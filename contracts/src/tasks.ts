// The registry of task types. Adding one is one import and one entry here, plus its handler in the
// worker's registry (docs/adding-a-task.md): every other surface derives from this list, and the
// worker's handler map is typed against TaskName, so a task without a handler fails `tsc`.

import type { Static } from '@sinclair/typebox';
import { circuitPopulationAnalysis } from './circuit-population-analysis.ts';
import { echo } from './echo.ts';
import { runPython } from './run-python.ts';
import type { AgentTool, TaskDefinition, ToolRoute } from './task-definition.ts';
import type { COMMON_FAILURE_CODES } from './task-status.ts';

// biome-ignore format: one task per line, so adding one is one line
export const TASK_DEFINITIONS = [
  runPython,
  circuitPopulationAnalysis,
  echo,
] as const satisfies readonly TaskDefinition[];

type Definition = (typeof TASK_DEFINITIONS)[number];
export type TaskName = Definition['name'];
export type QueueName = Definition['queue'];
export type TaskDefinitionOf<K extends TaskName> = Extract<Definition, { name: K }>;
/** Every code a failed task may carry: the common ones and each task's own. */
export type FailureCode = (typeof COMMON_FAILURE_CODES)[number] | Definition['failureCodes'][number];

export const TASKS = Object.freeze(Object.fromEntries(TASK_DEFINITIONS.map((def) => [def.name, def]))) as {
  readonly [K in TaskName]: TaskDefinitionOf<K>;
};

/** Every queue some task runs on, in registry order. */
export const QUEUES: readonly QueueName[] = Object.freeze([...new Set(TASK_DEFINITIONS.map((d) => d.queue))]);

/** Task definitions that have a synchronous tool route. */
export const TOOL_TASKS: readonly ToolTask[] = TASK_DEFINITIONS.filter(
  (def): def is Definition & { tool: ToolRoute } => def.tool !== undefined,
);
export type ToolTask = TaskDefinition<TaskName, QueueName> & { readonly tool: ToolRoute };

/** Task definitions the agent may call as tools (NEUROAGENT_AGENT__TOOLS picks among them). */
export const AGENT_TASKS: readonly AgentTask[] = TASK_DEFINITIONS.filter(
  (def): def is Definition & { agent: AgentTool } => (def as TaskDefinition).agent !== undefined,
);
export type AgentTask = TaskDefinition<TaskName, QueueName> & { readonly agent: AgentTool };

const duplicate = (values: readonly string[]) => values.find((v, i) => values.indexOf(v) !== i);
{
  // A second task with the same name, tool id or path would silently shadow the first.
  const clash =
    duplicate(TASK_DEFINITIONS.map((d) => d.name)) ??
    duplicate(TOOL_TASKS.map((d) => d.tool.id)) ??
    duplicate(TOOL_TASKS.map((d) => d.tool.path)) ??
    duplicate(TOOL_TASKS.map((d) => d.tool.operationId));
  if (clash !== undefined) throw new Error(`two task definitions share ${clash}`);
}

export function isTaskName(value: string): value is TaskName {
  return Object.hasOwn(TASKS, value);
}

export function isQueueName(value: string): value is QueueName {
  return (QUEUES as readonly string[]).includes(value);
}

export function tasksOfQueue(queue: QueueName): TaskName[] {
  return TASK_DEFINITIONS.filter((def) => def.queue === queue).map((def) => def.name);
}

/** What the ledger keeps of a task's result: token usage and stored file ids, where it has them. */
export function ledgerFieldsOf(
  task: string,
  result: unknown,
): { tokenConsumption?: Record<string, unknown>; storageIds?: string[] } {
  if (!isTaskName(task) || !result || typeof result !== 'object') return {};
  const ledger = (TASKS[task] as TaskDefinition).ledger;
  if (!ledger) return {};
  const fields: { tokenConsumption?: Record<string, unknown>; storageIds?: string[] } = {};
  // The result was checked against the output schema by the worker, but a hand-written one may not
  // have been: read defensively.
  try {
    const usage = ledger.tokenUsage?.(result);
    if (usage && typeof usage === 'object') fields.tokenConsumption = usage;
    const ids = ledger.storageIds?.(result);
    if (Array.isArray(ids) && ids.length > 0 && ids.every((id) => typeof id === 'string')) {
      fields.storageIds = [...ids];
    }
  } catch {
    return {};
  }
  return fields;
}

/** A task's input as its schema types it. */
export type TaskInputOf<K extends TaskName> = Static<(typeof TASKS)[K]['input']>;

/** One message's task and input, the input already validated against that task's schema. */
export type TaskJob = { [K in TaskName]: { task: K; input: TaskInputOf<K> } }[TaskName];
