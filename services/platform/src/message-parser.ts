// Validates a JetStream message as a task, once, at the worker's trust boundary. The message may
// come from older code or from a person with the NATS CLI, so nothing in it is trusted: its
// signature is checked first (before the body is even parsed), then its shape.
import {
  isQueueName,
  isTaskId,
  isTaskName,
  type Names,
  TASKS,
  type TaskEnvelope,
  TaskEnvelope as TaskEnvelopeSchema,
  type TaskJob,
  type TaskName,
} from '@neuroagent/contracts';
import type { TSchema } from '@sinclair/typebox';
import type { TaskSigner } from './signing.ts';
import { createValidator, type Validator } from './validator.ts';

export type PoisonReason = 'invalid_message' | 'bad_signature' | 'unknown_task' | 'invalid_input';

/** How a message's Task-Signature is checked; null skips the check (an operator vouches for it). */
export interface SignatureCheckOptions {
  signer: TaskSigner;
  header: string | undefined | null;
}

export type ParsedMessage =
  | { ok: true; taskId: string; task: TaskName; job: TaskJob; envelope: TaskEnvelope }
  | {
      ok: false;
      reason: PoisonReason;
      detail: string;
      taskId: string | null;
      envelope: Partial<TaskEnvelope> | null;
    };

const envelopeValidator = createValidator(TaskEnvelopeSchema);
const inputValidators = new Map<string, Validator<TSchema>>(
  Object.entries(TASKS).map(([name, def]) => [name, createValidator(def.input)]),
);

export function parseTaskMessage(
  subject: string,
  data: Uint8Array,
  names: Names,
  signature: SignatureCheckOptions | null,
): ParsedMessage {
  const parts = names.parseTaskSubject(subject);
  const taskId = parts && isTaskId(parts.taskId) ? parts.taskId : null;
  const poison = (
    reason: PoisonReason,
    detail: string,
    envelope: Partial<TaskEnvelope> | null = null,
  ): ParsedMessage => ({
    ok: false,
    reason,
    detail,
    taskId,
    envelope,
  });
  if (!parts || !taskId)
    return poison('invalid_message', `subject ${subject} is not <prefix>.<queue>.<task id>`);
  if (signature) {
    const check = signature.signer.verify(taskId, data, signature.header);
    // Nothing of an unsigned body is believed, not even the owner it names.
    if (!check.ok) return poison('bad_signature', check.detail);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (err) {
    return poison('invalid_message', `body is not JSON: ${(err as Error).message}`);
  }
  if (!envelopeValidator.check(body)) {
    const partial = body && typeof body === 'object' ? (body as Partial<TaskEnvelope>) : null;
    const errs = envelopeValidator.errors(body).map((e) => `${e.path}: ${e.message}`);
    return poison('invalid_message', `body does not match the task envelope: ${errs.join('; ')}`, partial);
  }
  if (!isTaskName(body.task)) return poison('unknown_task', `unknown task "${body.task}"`, body);
  if (!isQueueName(parts.queue) || TASKS[body.task].queue !== parts.queue || body.queue !== parts.queue) {
    return poison(
      'invalid_message',
      `task ${body.task} belongs to ${TASKS[body.task].queue}, not ${parts.queue}`,
      body,
    );
  }
  const inputErrors = inputValidators.get(body.task)?.errors(body.input) ?? [];
  if (inputErrors.length > 0) {
    const errs = inputErrors.map((e) => `input${e.path === '/' ? '' : e.path}: ${e.message}`);
    return poison('invalid_input', errs.join('; '), body);
  }
  // The input has just passed its task's schema: this is the one place that says so to the types.
  const job = { task: body.task, input: body.input } as TaskJob;
  return { ok: true, taskId, task: body.task, job, envelope: body };
}
