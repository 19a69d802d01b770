// Config fragments that both the gateway and the workers read, each under its own prefix
// (NEUROAGENT_NATS__URL, TASKS_NATS__URL, …). Descriptions become the README's table.
import { type Static, Type } from '@sinclair/typebox';

export const NatsSettings = Type.Object({
  url: Type.String({ default: 'nats://127.0.0.1:4222', description: 'NATS server URL(s), comma-separated' }),
  stream: Type.String({
    default: 'TASKS',
    pattern: '^[A-Za-z0-9_-]+$',
    description: 'JetStream stream of task messages; the dead-letter stream is `<stream>_DLQ`',
  }),
  subject_prefix: Type.String({
    default: 'tasks',
    pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$',
    description: 'Task subjects are `<prefix>.<queue>.<task_id>`',
  }),
  stream_max_age_s: Type.Integer({
    default: 604800,
    minimum: 60,
    description: 'How long task messages stay in the stream for inspection and replay (Limits retention)',
  }),
  duplicate_window_s: Type.Integer({
    default: 600,
    minimum: 1,
    description: 'JetStream de-duplication window for `Nats-Msg-Id`',
  }),
  stream_replicas: Type.Integer({
    default: 1,
    minimum: 1,
    maximum: 5,
    description: 'Stream replicas (R3 in a cluster)',
  }),
  max_msg_bytes: Type.Integer({
    default: 1048576,
    minimum: 1024,
    description: 'Largest task message the stream accepts (keep ≤ the server max_payload)',
  }),
  signing_key: Type.String({
    default: '',
    description:
      'Key (at least 32 characters) that signs task messages (gateway) and verifies them (workers, `npm run replay`); the same everywhere. Empty: read SIGNING_KEY_FILE',
  }),
  signing_key_file: Type.String({
    default: '.data/task-signing-key',
    minLength: 1,
    description:
      'File holding the signing key when SIGNING_KEY is empty; `npm start` generates it. A service never generates a key itself',
  }),
  signing_key_previous: Type.String({
    default: '',
    description:
      'Comma-separated former signing keys still accepted when verifying (never used to sign), for a key rotation',
  }),
  provision: Type.Boolean({
    default: true,
    description:
      'Create the stream (and, for workers, the consumers) at boot when absent; never changes existing ones',
  }),
  async_traces: Type.Boolean({
    default: false,
    description:
      "Capture the caller's stack at every NATS request (a JetStream publish is one), so that a timeout's error shows where it was made; it builds two Error objects per request, about 5% of the gateway's CPU per task",
  }),
});
export type NatsSettings = Static<typeof NatsSettings>;

// `host:port` pairs, comma-separated; an IPv6 host in brackets.
const HOST_PORT_LIST =
  '^$|^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9_.-]+):\\d{1,5}(,(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9_.-]+):\\d{1,5})*$';

export const RedisSettings = Type.Object({
  url: Type.String({
    default: 'redis://127.0.0.1:6379/0',
    description:
      'Redis URL (result backend, progress streams). With SENTINELS or CLUSTER_NODES only its user, password and database are used',
  }),
  key_prefix: Type.String({
    default: '',
    // A brace would become the keys' Redis Cluster hash tag in place of the task id.
    pattern: '^[^{}]*$',
    description: 'Prepended to every Redis key this service reads or writes (no `{` or `}`)',
  }),
  sentinels: Type.String({
    default: '',
    pattern: HOST_PORT_LIST,
    description:
      'Redis Sentinel `host:port` list, comma-separated: connect to the primary they name and follow failovers. Empty: use URL',
  }),
  sentinel_name: Type.String({
    default: 'mymaster',
    minLength: 1,
    description: 'Name of the primary the sentinels monitor (with SENTINELS)',
  }),
  cluster_nodes: Type.String({
    default: '',
    pattern: HOST_PORT_LIST,
    description:
      'Redis Cluster seed nodes, `host:port` comma-separated; the rest are discovered. Empty: not a cluster',
  }),
  auto_pipelining: Type.Boolean({
    default: true,
    description:
      'Send the commands issued in one event-loop turn (by concurrent requests or tasks) in one write to Redis (ioredis auto-pipelining), on the command connection (never on one that blocks in XREAD); each command still gets its own reply',
  }),
  events_shards: Type.Integer({
    default: 1,
    minimum: 1,
    maximum: 1024,
    description:
      "Shards of the tasks:events stream: 1 is the key `tasks:events`, more are `tasks:events:{0}`… spread over a cluster's primaries. The same on every gateway and worker",
  }),
});
export type RedisSettings = Static<typeof RedisSettings>;

export const LogSettings = Type.Object({
  level: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level' },
  ),
  batch_writes: Type.Boolean({
    default: true,
    description:
      'Write the lines logged in one event-loop turn to stdout together, in one system call; a line waits at most for the end of its turn (false: one write per line)',
  }),
});
