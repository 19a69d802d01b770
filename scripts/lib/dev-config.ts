// The few settings the dev runner needs, read the way the services will read them: a variable in
// the environment wins over the service's env file (as with `node --env-file`), and an empty value
// means the default (as in the platform config loader). The services validate the full config.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { QUEUES } from '@neuroagent/contracts';
import { DevError } from './dev-error.ts';
import { NATS_SERVER, REDIS_SERVER } from './local-services.ts';

export const GATEWAY_ENV_FILE = '.env.app';
export const WORKER_ENV_FILE = '.env.tasks';

export interface ServiceUrls {
  nats: { variable: string; url: string };
  redis: { variable: string; url: string };
}

/** `npm start` runs one worker for every queue of the task registry unless TASKS_QUEUES says otherwise. */
export const DEV_WORKER_QUEUES = QUEUES.join(',');

export interface DevConfig {
  gateway: ServiceUrls & { httpHost: string; httpPort: number };
  worker: ServiceUrls & { queues: string };
}

/** The variables of an env file, or none when the file does not exist. */
export function readEnvFile(file: string): NodeJS.Dict<string> {
  return existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
}

export function loadDevConfig(root: string, env: NodeJS.ProcessEnv): DevConfig {
  const gatewayEnv = { ...readEnvFile(join(root, GATEWAY_ENV_FILE)), ...env };
  const workerEnv = { ...readEnvFile(join(root, WORKER_ENV_FILE)), ...env };
  const setting = (vars: NodeJS.Dict<string>, variable: string, fallback: string) =>
    vars[variable] || fallback;
  const url = (vars: NodeJS.Dict<string>, variable: string, fallback: string) => ({
    variable,
    url: setting(vars, variable, fallback),
  });

  const rawPort = setting(gatewayEnv, 'NEUROAGENT_HTTP__PORT', '8078');
  const httpPort = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || httpPort > 65535) {
    throw new DevError(
      'config_invalid',
      `NEUROAGENT_HTTP__PORT must be a port number (got ${JSON.stringify(rawPort)})`,
    );
  }
  return {
    gateway: {
      nats: url(gatewayEnv, 'NEUROAGENT_NATS__URL', NATS_SERVER.defaultUrl),
      redis: url(gatewayEnv, 'NEUROAGENT_REDIS__URL', REDIS_SERVER.defaultUrl),
      httpHost: setting(gatewayEnv, 'NEUROAGENT_HTTP__HOST', '127.0.0.1'),
      httpPort,
    },
    worker: {
      nats: url(workerEnv, 'TASKS_NATS__URL', NATS_SERVER.defaultUrl),
      redis: url(workerEnv, 'TASKS_REDIS__URL', REDIS_SERVER.defaultUrl),
      queues: setting(workerEnv, 'TASKS_QUEUES', DEV_WORKER_QUEUES),
    },
  };
}
