// What a task handler sees and provides. Handlers throw (TaskFailedError for a permanent failure,
// anything else for a retryable one) and never ack: the consumer owns the message.
import type { TASKS, TaskName } from '@neuroagent/contracts';
import type { Logger } from '@neuroagent/platform';
import type { Static } from '@sinclair/typebox';
import type { WorkerConfig } from '../config.ts';

export type TaskInput<K extends TaskName> = Static<(typeof TASKS)[K]['input']>;
export type TaskOutput<K extends TaskName> = Static<(typeof TASKS)[K]['output']>;

export interface TaskContext {
  taskId: string;
  userId: string;
  threadId: string | undefined;
  attempt: number;
  log: Logger;
  /** Aborted when the worker gives the task back (shutdown) or the task is cancelled. */
  signal: AbortSignal;
  progress(data: { fraction?: number; message?: string }): Promise<void>;
}

export interface TaskHandler<K extends TaskName> {
  run(input: TaskInput<K>, ctx: TaskContext): Promise<TaskOutput<K>>;
  /** How many of these tasks this process runs at once. */
  readonly concurrency: number;
  close(): Promise<void>;
}

export interface HandlerDeps {
  config: Readonly<WorkerConfig>;
  log: Logger;
}

export type HandlerFactory<K extends TaskName> = (deps: HandlerDeps) => Promise<TaskHandler<K>>;

/** The handlers of one consumer, each typed against its own task. */
export type HandlerMap = { [K in TaskName]?: TaskHandler<K> };

/** One message's task and input, the input already validated against that task's schema. */
export type TaskJob = { [K in TaskName]: { task: K; input: TaskInput<K> } }[TaskName];

/**
 * Runs a job on its own task's handler; null when this consumer has none. Generic over the task,
 * so the handler, its input and its output stay tied to one task type.
 */
export function runJob<K extends TaskName>(
  handlers: HandlerMap,
  job: { task: K; input: TaskInput<K> },
  ctx: TaskContext,
): Promise<TaskOutput<K>> | null {
  const handler: TaskHandler<K> | undefined = handlers[job.task];
  return handler ? handler.run(job.input, ctx) : null;
}
