// Request and response bodies of the admin API (docs/admin-api.md): what routes/admin.ts validates
// and what the OpenAPI catalog documents. Imports TypeBox, contracts and http-schemas.ts (the ledger
// row, which GET /tasks lists too) only.
import { TaskEvent, TaskRecord } from '@neuroagent/contracts';
import { Type } from '@sinclair/typebox';
import { LedgerTask } from '../http-schemas.ts';

// A re-drive or purge names at most this many dead letters; `all` has no cap (it pages itself).
export const MAX_SEQS = 1000;

export const SeqSelection = Type.Union([
  Type.Object(
    {
      seqs: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: MAX_SEQS, uniqueItems: true }),
    },
    { additionalProperties: false },
  ),
  Type.Object({ all: Type.Literal(true) }, { additionalProperties: false }),
]);

export const PauseBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);

const Iso = Type.String({ description: 'ISO-8601 time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const AdminTaskList = Type.Object({
  items: Type.Array(LedgerTask),
  next_cursor: Nullable(Type.String()),
});

export const RatesSchema = Type.Object({
  finished: Type.Integer(),
  succeeded: Type.Integer(),
  failed: Type.Integer(),
  cancelled: Type.Integer(),
  per_s: Type.Number(),
  failure_rate: Type.Number(),
});

export const QueueViewSchema = Type.Object(
  {
    queue: Type.String(),
    paused: Type.Boolean(),
    paused_by: Nullable(Type.String()),
    paused_at: Nullable(Iso),
    pause_reason: Nullable(Type.String()),
    stream: Type.Object({
      name: Type.String(),
      messages: Type.Integer(),
      bytes: Type.Integer(),
      last_ts: Nullable(Iso),
    }),
    consumer: Type.Union([
      Type.Object({
        name: Type.String(),
        pending: Type.Integer(),
        ack_pending: Type.Integer(),
        redelivered: Type.Integer(),
        waiting_pulls: Type.Integer(),
        last_active: Nullable(Iso),
      }),
      Type.Null(),
    ]),
    workers: Type.Array(
      Type.Object({
        id: Type.String(),
        slots: Type.Integer(),
        busy: Type.Integer(),
        paused: Type.Boolean(),
        last_seen: Iso,
      }),
    ),
    replicas: Type.Integer(),
    rates: Type.Object({ minute: RatesSchema, hour: RatesSchema }),
  },
  { $id: 'QueueView' },
);

export const QueueList = Type.Object({ queues: Type.Array(QueueViewSchema) });

export const AdminTaskDetail = Type.Object({
  task: Type.Union([LedgerTask, Type.Null()]),
  record: Type.Union([TaskRecord, Type.Null()]),
  input: Type.Unknown({ description: "The task's input from the JetStream log; null once it aged out" }),
  subject: Nullable(Type.String()),
  events: Type.Array(TaskEvent),
});

export const DeadLetterSchema = Type.Object(
  {
    seq: Type.Integer(),
    task_id: Nullable(Type.String()),
    queue: Nullable(Type.String()),
    task: Nullable(Type.String()),
    owner: Nullable(Type.String()),
    subject: Type.String(),
    reason: Nullable(Type.String()),
    detail: Nullable(Type.String()),
    deliveries: Type.Union([Type.Integer(), Type.Null()]),
    dead_at: Iso,
    replayable: Type.Boolean(),
    poison: Nullable(Type.String()),
  },
  { $id: 'DeadLetter' },
);

export const DeadLetterList = Type.Object({
  items: Type.Array(DeadLetterSchema),
  next_cursor: Nullable(Type.String()),
});

export const RedriveReport = Type.Object({
  redriven: Type.Array(
    Type.Object({ seq: Type.Integer(), task_id: Type.String(), replay_of: Nullable(Type.String()) }),
  ),
  skipped: Type.Array(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
});

export const PurgeReport = Type.Object({ purged: Type.Integer() });

export const ReplayAccepted = Type.Object({ task_id: Type.String(), replay_of: Type.String() });

export const AuditList = Type.Object({
  items: Type.Array(
    Type.Object({
      id: Type.Integer(),
      at: Iso,
      actor: Type.String(),
      action: Type.String(),
      target: Type.String(),
      detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    }),
  ),
  next_cursor: Nullable(Type.String()),
});

export const Me = Type.Object({ user_id: Type.String(), admin: Type.Boolean() });
