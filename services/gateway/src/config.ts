// GatewayConfig: every NEUROAGENT_* variable the gateway reads, one description each. Parsed once
// in main.ts; the rest of the gateway receives the frozen object.
import {
  LogSettings,
  loadConfig,
  NatsSettings,
  RedisSettings,
  redisTopology,
  StorageSettings,
} from '@neuroagent/platform';
import { type Static, Type } from '@sinclair/typebox';
import { AgentSettings, enabledTools, LlmSettings } from './agent/settings.ts';
import { AuthSettings } from './auth/settings.ts';
import { DbSettings } from './ledger/settings.ts';
import { RateLimitSettings } from './rate-limit/settings.ts';
import { ToolSettings } from './tool-settings.ts';

export const GATEWAY_ENV_PREFIX = 'NEUROAGENT';

export const GatewayConfig = Type.Object({
  http: Type.Object({
    host: Type.String({ default: '127.0.0.1', description: 'Address the HTTP server binds to' }),
    server_timing: Type.Union([Type.Literal('request'), Type.Literal('always'), Type.Literal('never')], {
      default: 'request',
      description:
        'When a response reports its stages in a Server-Timing header: `request` = only when the request carries `X-Server-Timing: 1` (timing costs work on every request); `always`; `never`',
    }),
    port: Type.Integer({
      default: 8078,
      minimum: 0,
      maximum: 65535,
      description: 'HTTP port (the original used 8078)',
    }),
    max_body_kb: Type.Integer({
      default: 512,
      minimum: 1,
      maximum: 1000,
      description:
        'Largest accepted request body; larger bodies get 413 (must stay below the NATS message limit)',
    }),
    retry_after_s: Type.Integer({
      default: 2,
      minimum: 0,
      maximum: 3600,
      description:
        'Retry-After sent with every 503 that has no better figure of its own (a dependency is down)',
    }),
    shutdown_grace_s: Type.Integer({
      default: 10,
      minimum: 0,
      description: 'On SIGTERM, how long in-flight requests may take before the process exits',
    }),
    workers: Type.Integer({
      default: 1,
      minimum: 1,
      maximum: 64,
      description:
        'Gateway processes on this host: above 1, a primary process forks this many workers ' +
        '(node:cluster) that share the HTTP port, each with its own NATS, Redis and ledger ' +
        'connections, and restarts one that dies; 1 runs a single process',
    }),
  }),
  nats: Type.Composite([
    NatsSettings,
    Type.Object({
      publish_timeout_ms: Type.Integer({
        default: 5000,
        minimum: 100,
        description:
          'How long to wait for the JetStream PubAck before answering 503, every attempt included (a ' +
          'publish is retried while the stream has no leader, e.g. during an election in a cluster)',
      }),
      publish_retry_ms: Type.Integer({
        default: 250,
        minimum: 10,
        maximum: 10000,
        description:
          'Pause between publish attempts while JetStream answers that nobody can store the task (no ' +
          'stream leader); the message id keeps retries from storing it twice',
      }),
      publish_attempt_timeout_ms: Type.Integer({
        default: 1000,
        minimum: 50,
        description:
          'Longest wait for the PubAck of one publish attempt: an attempt left unanswered (the NATS ' +
          'node it went to died with it) is sent again, within NEUROAGENT_NATS__PUBLISH_TIMEOUT_MS',
      }),
    }),
  ]),
  redis: RedisSettings,
  tasks: Type.Object({
    ttl_s: Type.Integer({
      default: 86400,
      minimum: 60,
      description: 'Lifetime of task:{id}:meta written at submit (match TASKS_RESULT_TTL_S)',
    }),
    start_within_s: Type.Integer({
      default: 3600,
      minimum: 1,
      description:
        'A task not started this long after it was published ends as failed/expired instead of running ' +
        '(the envelope field startWithinS)',
    }),
    max_wait_s: Type.Integer({
      default: 60,
      minimum: 0,
      maximum: 600,
      description: 'Upper bound of `?wait=` on GET /tasks/{id}',
    }),
  }),
  tools: ToolSettings,
  idempotency: Type.Object({
    window_s: Type.Integer({
      default: 86400,
      minimum: 1,
      maximum: 604800,
      description:
        'How long an Idempotency-Key keeps its task: a repeat within it gets the same task id and publishes ' +
        'nothing; after it, the same key submits again',
    }),
    max_key_length: Type.Integer({
      default: 255,
      minimum: 16,
      maximum: 1024,
      description: 'Longest Idempotency-Key accepted; a longer one gets 400 invalid_idempotency_key',
    }),
  }),
  storage: Type.Composite([
    Type.Object({
      enabled: Type.Boolean({
        default: false,
        description: 'Serve GET /storage/{id}/presigned-url from S3 (the workers store artifacts there)',
      }),
      expires_in: Type.Integer({
        default: 600,
        minimum: 1,
        maximum: 604800,
        description: 'Lifetime of a presigned artifact URL, in seconds',
      }),
    }),
    StorageSettings,
  ]),
  db: DbSettings,
  auth: AuthSettings,
  rate_limit: RateLimitSettings,
  long_poll: Type.Object({
    block_ms: Type.Integer({
      default: 5000,
      minimum: 10,
      maximum: 60000,
      description: 'Longest single XREAD BLOCK of the long-poll hub before it re-arms',
    }),
    cluster_poll_ms: Type.Integer({
      default: 100,
      minimum: 10,
      maximum: 5000,
      description:
        'On a Redis Cluster (REDIS__CLUSTER_NODES), where one XREAD cannot span the slots of several tasks, the SSE hub polls each followed task this often: the added latency of a progress event',
    }),
  }),
  admin: Type.Object({
    worker_stale_s: Type.Number({
      default: 15,
      minimum: 1,
      description:
        'GET /admin/queues lists a worker while its last heartbeat is younger than this (keep it above TASKS_HEARTBEAT_INTERVAL_S)',
    }),
    max_timeline_events: Type.Integer({
      default: 1000,
      minimum: 1,
      maximum: 100000,
      description: "Most events GET /admin/tasks/{id} returns of a task's timeline (the oldest first)",
    }),
  }),
  llm: LlmSettings,
  agent: AgentSettings,
  ui: Type.Object({
    dir: Type.String({
      default: 'services/dashboard/dist',
      minLength: 1,
      description:
        'Folder the operator dashboard at /ui is served from (`npm run build:ui` writes it); a relative path is taken from the repository root',
    }),
  }),
  // Read by `npm run debug:gateway` (scripts/debug.ts) only: the gateway itself never opens it.
  debug: Type.Object({
    port: Type.Integer({
      default: 9229,
      minimum: 0,
      maximum: 65535,
      description: 'Node inspector port of `npm run debug:gateway` (0 = any free port)',
    }),
    host: Type.String({
      default: '127.0.0.1',
      minLength: 1,
      description:
        'Address the inspector of `npm run debug:gateway` binds to; whoever reaches it runs code in the gateway, so keep it on loopback',
    }),
  }),
  log: LogSettings,
});
export type GatewayConfig = Static<typeof GatewayConfig>;

export function loadGatewayConfig(env: Record<string, string | undefined>): Readonly<GatewayConfig> {
  const config = loadConfig(GatewayConfig, GATEWAY_ENV_PREFIX, env);
  redisTopology(config.redis); // SENTINELS and CLUSTER_NODES together fail here, at boot
  enabledTools(config.agent); // so does a tool name that is no agent tool
  return config;
}
