// Tool routes: the synchronous convenience. Submit, wait for the result up to the tool's timeout,
// answer 200 with the task's output, or 202 with where to poll.
import type Router from '@koa/router';
import {
  CIRCUIT_TASK,
  CircuitAnalysisInput,
  RUN_PYTHON_TASK,
  RunPythonInput,
  type TaskAccepted,
  type TaskName,
} from '@neuroagent/contracts';
import { createValidator } from '@neuroagent/platform';
import type { Context } from 'koa';
import type { AppDeps } from '../app.ts';
import { HttpError } from '../http-error.ts';
import { parseBody } from '../json-body.ts';
import { submitTask } from './submit-task.ts';
import { readRecord } from './task-io.ts';

const runPythonBody = createValidator(RunPythonInput);
const circuitBody = createValidator(CircuitAnalysisInput);

/** Submits, waits up to the tool's timeout, and answers with the task's output (or 202). */
async function submitAndWait(
  ctx: Context,
  deps: AppDeps,
  task: TaskName,
  input: object,
  timeoutS: number,
  threadId?: string,
): Promise<void> {
  const { taskId, record: ended } = await submitTask(ctx, deps, { task, input, threadId }, timeoutS);
  ctx.set('x-task-id', taskId);
  if (!ended) {
    // Still pending or running: say which, and where to poll.
    const record = await readRecord(deps, taskId);
    const accepted: TaskAccepted = {
      task_id: taskId,
      status: record?.status ?? 'pending',
      status_url: `/tasks/${taskId}`,
    };
    ctx.status = 202;
    ctx.set('location', accepted.status_url);
    ctx.body = accepted;
    return;
  }
  if (ended.status === 'succeeded') {
    ctx.status = 200;
    ctx.body = ended.result;
    return;
  }
  const error = ended.error ?? { code: 'internal', message: 'the task failed' };
  // The worker reported a failure of the task itself (expired, dead-lettered, …), not of this request.
  throw new HttpError(ended.status === 'cancelled' ? 409 : 502, error.code, error.message, {
    ...(error.details ? { details: error.details } : {}),
  });
}

export function registerToolRoutes(router: Router, deps: AppDeps): void {
  router.post('/tools/run-python', deps.limits.middleware('run_python'), async (ctx) => {
    const input = await parseBody(ctx, runPythonBody, deps.config.http.max_body_kb * 1024);
    const maxCode = deps.config.tools.run_python.max_code_kb * 1024;
    const codeBytes = Buffer.byteLength(input.python_script, 'utf8');
    if (codeBytes > maxCode) {
      throw new HttpError(
        413,
        'code_too_large',
        `python_script is ${codeBytes} bytes, over the ${maxCode}-byte limit`,
        {
          details: [
            {
              path: '/python_script',
              message: `limit ${maxCode} bytes (NEUROAGENT_TOOLS__RUN_PYTHON__MAX_CODE_KB)`,
            },
          ],
        },
      );
    }
    await submitAndWait(
      ctx,
      deps,
      RUN_PYTHON_TASK,
      input,
      deps.config.tools.run_python.timeout_s,
      input.thread_id,
    );
  });

  router.post('/tools/circuit-population-analysis', deps.limits.middleware('circuit'), async (ctx) => {
    const input = await parseBody(ctx, circuitBody, deps.config.http.max_body_kb * 1024);
    await submitAndWait(ctx, deps, CIRCUIT_TASK, input, deps.config.tools.circuit.timeout_s);
  });
}
