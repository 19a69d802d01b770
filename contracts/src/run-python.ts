// run_python on python_q: input and output in the original's shape, plus stderr
// lines on both variants and the stdout printed before an exception (docs/python-sandbox.md).
import { type Static, Type } from '@sinclair/typebox';

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
