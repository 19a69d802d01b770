// run_python on python_q: input and output in the original's shape, plus stderr
// lines on both variants and the stdout printed before an exception (docs/python-sandbox.md).
import { type Static, Type } from '@sinclair/typebox';
import { defineTask } from './task-definition.ts';

export const RUN_PYTHON_TASK = 'run_python';
export const RUN_PYTHON_QUEUE = 'python_q';

export const PYTHON_ERROR_TYPES = [
  'python-error',
  'install-error',
  'timeout',
  'memory-limit',
  'output-limit',
  'cancelled',
  'internal',
] as const;
export const PythonErrorType = Type.Union(PYTHON_ERROR_TYPES.map((t) => Type.Literal(t)));
export type PythonErrorType = Static<typeof PythonErrorType>;

export const RunPythonInput = Type.Object(
  {
    python_script: Type.String({
      minLength: 1,
      description: 'Python 3 source; the last expression is returned',
    }),
    thread_id: Type.Optional(
      Type.String({ maxLength: 256, description: 'Chat thread, stored with artifacts' }),
    ),
  },
  { additionalProperties: false, $id: 'RunPythonInput' },
);
export type RunPythonInput = Static<typeof RunPythonInput>;

export const PythonErrorDetail = Type.Object({
  name: Type.String({ description: 'Exception class, e.g. ZeroDivisionError' }),
  message: Type.String(),
  traceback: Type.Optional(Type.String()),
});
export type PythonErrorDetail = Static<typeof PythonErrorDetail>;

export const PythonSuccess = Type.Object({
  status: Type.Literal('success'),
  output: Type.Array(Type.String(), { description: 'stdout lines' }),
  stderr: Type.Array(Type.String()),
  return_value: Type.Unknown({ description: 'The last expression, as JSON' }),
});
export type PythonSuccess = Static<typeof PythonSuccess>;

export const PythonFailure = Type.Object({
  status: Type.Literal('error'),
  error_type: PythonErrorType,
  error: Type.Union([PythonErrorDetail, Type.String(), Type.Null()]),
  output: Type.Array(Type.String(), { description: 'stdout printed before the error' }),
  stderr: Type.Array(Type.String()),
});
export type PythonFailure = Static<typeof PythonFailure>;

export const PythonResult = Type.Union([PythonSuccess, PythonFailure]);
export type PythonResult = Static<typeof PythonResult>;

export const RunPythonOutput = Type.Object(
  {
    result: PythonResult,
    storage_id: Type.Array(Type.String()),
  },
  { $id: 'RunPythonOutput' },
);
export type RunPythonOutput = Static<typeof RunPythonOutput>;

export const runPython = defineTask({
  name: RUN_PYTHON_TASK,
  queue: RUN_PYTHON_QUEUE,
  description:
    'Run Python 3 in the Pyodide sandbox: stdout, stderr, the last expression, and stored figures and files',
  input: RunPythonInput,
  output: RunPythonOutput,
  // Python errors, timeouts and limits are results (status "error"), not task failures.
  failureCodes: [],
  tool: {
    id: 'run_python',
    path: '/tools/run-python',
    operationId: 'runPython',
    summary: 'Run Python in the sandbox and wait for the result',
    defaultWaitS: 120,
    rateLimit: {
      points: 100,
      windowS: 3600,
      why:
        'The original left tools unlimited; 100/h caps a runaway agent loop while leaving an interactive ' +
        'session (a few calls per chat turn) untouched',
    },
    maxFieldSize: { field: 'python_script', setting: 'max_code_kb', defaultKb: 256, code: 'code_too_large' },
  },
  agent: {
    description:
      'Run Python 3 in a sandbox (Pyodide, no network) and get back its stdout lines, stderr and the value of the ' +
      'last expression. Async code is allowed. The standard library is available; numpy, pandas and the like only ' +
      'where the deployment installed them. Figures made with plotly or matplotlib, and files written under ' +
      '/output, are stored and their ids returned in storage_id: they are shown to the user, so do not print ' +
      'them or describe how to save them. A Python exception is a normal result with status "error".',
    parameters: Type.Object(
      { python_script: RunPythonInput.properties.python_script },
      { additionalProperties: false },
    ),
    threadField: 'thread_id',
  },
  ledger: { storageIds: (output) => output.storage_id },
});
