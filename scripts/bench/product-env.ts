// The environment of the product's processes in the benchmarks: the gateway as a user runs it in
// production (auth and rate limiting on, the limits raised out of the way, info logs) and the echo_q
// worker, both pointed at the bench's private servers.
import { gatewayEnv, type TestNamespace, workerEnv } from '../../services/platform/src/testing.ts';

export interface BenchServers {
  natsUrl: string;
  redisUrl: string;
}

export function productGatewayEnv(
  ns: TestNamespace,
  servers: BenchServers,
  opts: { jwtSecret: string; dbUrl: string; extra?: Record<string, string> },
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...gatewayEnv(ns, {
      ...opts.extra,
      NEUROAGENT_NATS__URL: servers.natsUrl,
      NEUROAGENT_REDIS__URL: servers.redisUrl,
      NEUROAGENT_AUTH__DISABLED: 'false',
      NEUROAGENT_AUTH__JWT_SECRET: opts.jwtSecret,
      NEUROAGENT_RATE_LIMIT__DISABLED: 'false',
      NEUROAGENT_RATE_LIMIT__SUBMIT_POINTS: '1000000000',
      NEUROAGENT_RATE_LIMIT__RUN_PYTHON_POINTS: '1000000000',
      NEUROAGENT_DB__URL: opts.dbUrl,
    }),
  };
}

export function echoWorkerEnv(
  ns: TestNamespace,
  servers: BenchServers,
  extra: Record<string, string> = {},
): Record<string, string> {
  return workerEnv(ns, {
    ...extra,
    TASKS_NATS__URL: servers.natsUrl,
    TASKS_REDIS__URL: servers.redisUrl,
    TASKS_QUEUES: 'echo_q',
    TASKS_NATS__MAX_ACK_PENDING: '256',
    TASKS_NATS__FETCH_EXPIRES_MS: '5000',
  });
}
