// The one error shape of the HTTP API and of failed or cancelled tasks (docs/gateway.md).
import { type Static, Type } from '@sinclair/typebox';

export const ErrorDetail = Type.Object({
  path: Type.String({ description: 'JSON pointer of the offending value, e.g. /python_script' }),
  message: Type.String(),
});
export type ErrorDetail = Static<typeof ErrorDetail>;

export const ErrorBody = Type.Object(
  {
    code: Type.String({ description: 'Stable snake_case error code', pattern: '^[a-z][a-z0-9_]*$' }),
    message: Type.String(),
    details: Type.Optional(Type.Array(ErrorDetail)),
  },
  { $id: 'ErrorBody' },
);
export type ErrorBody = Static<typeof ErrorBody>;
