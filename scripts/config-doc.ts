// Prints the configuration tables of both services from their schemas (`npm run config:doc`), or
// rewrites them in README.md between the config markers (`npm run config:doc -- --write`).
// test/readme.test.ts fails when the README drifts from the code.
import { readFileSync, writeFileSync } from 'node:fs';
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

export const README_CONFIG_BLOCK = /(<!-- config:begin -->\n)[\s\S]*?(\n<!-- config:end -->)/;

if (import.meta.main) {
  if (process.argv.includes('--write')) {
    const path = new URL('../README.md', import.meta.url);
    const readme = readFileSync(path, 'utf8');
    writeFileSync(
      path,
      readme.replace(README_CONFIG_BLOCK, (_m, a: string, b: string) => `${a}${configDoc()}${b}`),
    );
  } else {
    process.stdout.write(`${configDoc()}\n`);
  }
}
