// The JetStream message body of every task (docs/reliability.md). The task id is not in the body: it is the
// subject's last token and the Nats-Msg-Id header. Nothing in it is tied to the moment of
// publication, so `nats pub` of a stored body (a replay) is a valid task.
import { type Static, Type } from '@sinclair/typebox';
import { QUEUES } from './tasks.ts';

export const SCHEMA_VERSION = 1;

export const TaskEnvelope = Type.Object(
  {
    v: Type.Literal(SCHEMA_VERSION),
    queue: Type.Union(QUEUES.map((q) => Type.Literal(q))),
    task: Type.String({ minLength: 1, maxLength: 64 }),
    input: Type.Unknown(),
    userId: Type.String({ minLength: 1, maxLength: 255 }),
    threadId: Type.Optional(Type.String({ maxLength: 256 })),
    requestId: Type.Optional(Type.String({ maxLength: 128 })),
    submittedAt: Type.String({ format: 'date-time' }),
    startWithinS: Type.Integer({
      minimum: 1,
      description:
        'The task is not started later than this many seconds after the message was published (its ' +
        'JetStream timestamp), so a republished copy (a replay) gets a fresh window',
    }),
  },
  { additionalProperties: false },
);
export type TaskEnvelope = Static<typeof TaskEnvelope>;
