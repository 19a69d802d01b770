// The registry of task types: name → queue and schemas. The worker's handler registry is typed
// against TaskName, so adding a task here without a handler fails `tsc`.
import type { TSchema } from '@sinclair/typebox';
import {
  CIRCUIT_QUEUE,
  CIRCUIT_TASK,
  CircuitAnalysisInput,
  CircuitAnalysisOutput,
} from './circuit-population-analysis.ts';
import { ECHO_QUEUE, ECHO_TASK, EchoInput, EchoOutput } from './echo.ts';
import type { QueueName } from './names.ts';
import { RUN_PYTHON_QUEUE, RUN_PYTHON_TASK, RunPythonInput, RunPythonOutput } from './run-python.ts';

export interface TaskDefinition {
  readonly queue: QueueName;
  readonly input: TSchema;
  readonly output: TSchema;
}

export const TASKS = {
  [RUN_PYTHON_TASK]: { queue: RUN_PYTHON_QUEUE, input: RunPythonInput, output: RunPythonOutput },
  [CIRCUIT_TASK]: { queue: CIRCUIT_QUEUE, input: CircuitAnalysisInput, output: CircuitAnalysisOutput },
  [ECHO_TASK]: { queue: ECHO_QUEUE, input: EchoInput, output: EchoOutput },
} as const satisfies Record<string, TaskDefinition>;

export type TaskName = keyof typeof TASKS;

export function isTaskName(value: string): value is TaskName {
  return Object.hasOwn(TASKS, value);
}

export function tasksOfQueue(queue: QueueName): TaskName[] {
  return (Object.keys(TASKS) as TaskName[]).filter((name) => TASKS[name].queue === queue);
}
