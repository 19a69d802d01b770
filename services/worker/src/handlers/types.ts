// What a task handler sees and provides. Handlers throw (TaskFailedError for a permanent failure,
// anything else for a retryable one) and never ack: the consumer owns the message.
import type { TASKS, TaskInputOf, TaskName } from '@neuroagent/contracts';
import { ATTR, type Logger, SpanKind, tracingEnabled, withSpan } from '@neuroagent/platform';
import type { Static } from '@sinclair/typebox';
import type { WorkerConfig } from '../config.ts';
import type { WorkerMetrics } from '../metrics.ts';

export type TaskInput<K extends TaskName> = TaskInputOf<K>;
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
  /** The process's metrics, for what a handler measures itself (the python sandbox's pool). */
  metrics?: Pick<WorkerMetrics, 'watchPythonSandbox'>;
}

export type HandlerFactory<K extends TaskName> = (deps: HandlerDeps) => Promise<TaskHandler<K>>;

/** The handlers of one consumer, each typed against its own task. */
export type HandlerMap = { [K in TaskName]?: TaskHandler<K> };

export type { TaskJob } from '@neuroagent/contracts';

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
  if (!handler) return null;
  if (!tracingEnabled()) return handler.run(job.input, ctx);
  // The handler's own span, inside the delivery's: a throw records its code (never its message).
  return withSpan(`run ${job.task}`, RUN_SPAN, (span) => {
    span?.setAttribute(ATTR.taskName, job.task);
    return handler.run(job.input, ctx);
  });
}

const RUN_SPAN = { kind: SpanKind.INTERNAL };
