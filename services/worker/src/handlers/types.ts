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
