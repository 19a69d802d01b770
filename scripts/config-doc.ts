// Prints the configuration tables of both services from their schemas (`npm run config:doc`).
// The README's tables are this output; test/readme.test.ts fails when they drift apart.

import { GATEWAY_ENV_PREFIX, GatewayConfig } from '../services/gateway/src/config.ts';
import { configTable } from '../services/platform/src/config.ts';
import { WORKER_ENV_PREFIX, WorkerConfig } from '../services/worker/src/config.ts';

export function configDoc(): string {
  return [
    '### Gateway (`.env.app`, prefix `NEUROAGENT_`)',
    '',
    configTable(GatewayConfig, GATEWAY_ENV_PREFIX),
    '',
    '### Workers (`.env.tasks`, prefix `TASKS_`)',
    '',
    configTable(WorkerConfig, WORKER_ENV_PREFIX),
  ].join('\n');
}

if (import.meta.main) process.stdout.write(`${configDoc()}\n`);
