// WorkerConfig: every TASKS_* variable a worker reads, one description each. Parsed once in
// main.ts; handlers receive the frozen object through their context.
import { QUEUES } from '@neuroagent/contracts';
import { LogSettings, loadConfig, NatsSettings, RedisSettings } from '@neuroagent/platform';
import { type Static, Type } from '@sinclair/typebox';

export const WORKER_ENV_PREFIX = 'TASKS';

export const WorkerConfig = Type.Object({
  queues: Type.Array(Type.Union(QUEUES.map((q) => Type.Literal(q))), {
    default: ['python_q'],
    minItems: 1,
    uniqueItems: true,
    description: 'Comma-separated queues this process consumes (`python_q`, `circuit_q`)',
  }),
  result_ttl_s: Type.Integer({
    default: 86400,
    minimum: 60,
    description: 'Lifetime of task:{id}:result, :progress and :meta after the task ends',
  }),
  nats: Type.Composite([
    NatsSettings,
    Type.Object({
      ack_wait_s: Type.Integer({
        default: 60,
        minimum: 1,
        description:
          'Consumer AckWait: an unacked, silent message is redelivered after this (set at creation)',
      }),
      max_deliver: Type.Integer({
        default: 5,
        minimum: 1,
        description: 'Consumer MaxDeliver (set at creation)',
      }),
      max_ack_pending: Type.Integer({
        default: 64,
        minimum: 1,
        description: 'Consumer MaxAckPending: total worker slots across every replica (set at creation)',
      }),
      fetch_expires_ms: Type.Integer({
        default: 5000,
        minimum: 1000,
        description: 'How long one pull request waits for messages before the loop re-issues it',
      }),
      retry_base_ms: Type.Integer({
        default: 1000,
        minimum: 10,
        description: 'First nak delay after an infrastructure error; doubles per delivery, with jitter',
      }),
      retry_max_ms: Type.Integer({ default: 60000, minimum: 10, description: 'Largest nak delay' }),
    }),
  ]),
  redis: Type.Composite([
    RedisSettings,
    Type.Object({
      progress_maxlen: Type.Integer({
        default: 100,
        minimum: 10,
        description: 'Approximate cap of each progress stream',
      }),
      events_maxlen: Type.Integer({
        default: 100000,
        minimum: 100,
        description: 'Approximate cap of the global tasks:events stream',
      }),
    }),
  ]),
  python: Type.Object({
    threads: Type.Integer({
      default: 2,
      minimum: 1,
      maximum: 64,
      description: 'Pyodide threads in the sandbox pool = python_q tasks run at once by this process',
    }),
    timeout_s: Type.Number({ default: 60, minimum: 0.1, description: 'Wall-clock limit of one Python run' }),
    kill_grace_ms: Type.Integer({
      default: 500,
      minimum: 10,
      description: 'After the soft interrupt, how long before the thread is killed and replaced',
    }),
    max_output_kb: Type.Integer({
      default: 1024,
      minimum: 1,
      description: 'Cap on captured stdout and on stderr (each); the rest is dropped with a marker',
    }),
    max_return_kb: Type.Integer({
      default: 1024,
      minimum: 1,
      description: 'Cap on the JSON of the return value',
    }),
    sandbox_restart_ms: Type.Integer({
      default: 1000,
      minimum: 10,
      description: 'Delay before the sandbox process is restarted after it died',
    }),
  }),
  health_file: Type.String({
    default: '',
    description: 'When set, touched every 10 s while the worker is healthy (for container health checks)',
  }),
  shutdown_grace_s: Type.Integer({
    default: 30,
    minimum: 0,
    description: 'On SIGTERM, how long in-flight tasks may run before they are handed back (nak)',
  }),
  log: LogSettings,
});
export type WorkerConfig = Static<typeof WorkerConfig>;

export function loadWorkerConfig(env: Record<string, string | undefined>): Readonly<WorkerConfig> {
  return loadConfig(WorkerConfig, WORKER_ENV_PREFIX, env);
}
