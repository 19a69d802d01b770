// A task's input checked against its schema: the one check of POST /tasks and of every tool call
// an agent turn makes, so both refuse exactly the same inputs with the same details.
import { isTaskName, TASKS, type TaskName } from '@neuroagent/contracts';
import { createValidator, type Validator } from '@neuroagent/platform';
import type { TSchema } from '@sinclair/typebox';
import { HttpError } from './http-error.ts';

const inputValidators = new Map<string, Validator<TSchema>>(
  Object.entries(TASKS).map(([name, def]) => [name, createValidator(def.input)]),
);

/** 404 unknown_task for a name no task has. */
export function checkTaskName(name: string): asserts name is TaskName {
  if (!isTaskName(name)) {
    throw new HttpError(404, 'unknown_task', `no task named ${name}`, {
      details: [{ path: '/task', message: `expected one of: ${Object.keys(TASKS).join(', ')}` }],
    });
  }
}

/** 400 invalid_request naming each offending path under `prefix` (/input for POST /tasks). */
export function checkTaskInput(task: TaskName, input: unknown, prefix = '/input'): void {
  const errors = inputValidators.get(task)?.errors(input) ?? [];
  if (errors.length === 0) return;
  const details = errors.map((e) => ({
    path: `${prefix}${e.path === '/' ? '' : e.path}`,
    message: e.message,
  }));
  throw new HttpError(
    400,
    'invalid_request',
    `invalid input for ${task}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
    { details },
  );
}
