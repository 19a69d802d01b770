// Prints the configuration tables of both services from their schemas, and the task table from the
// task registry (`npm run config:doc`), or rewrites them in README.md between their markers and in
// .env.app / .env.tasks (`npm run config:doc -- --write`).
// test/readme.test.ts fails when the README drifts from the code.
import { readFileSync, writeFileSync } from 'node:fs';
import { COMMON_FAILURE_CODES, TASK_DEFINITIONS } from '@neuroagent/contracts';
import { GATEWAY_ENV_PREFIX, GatewayConfig } from '../services/gateway/src/config.ts';
import { configTable, describeConfig } from '../services/platform/src/config.ts';
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

/** One row per registered task: its queue, tool route, default budget and failure codes. */
export function taskTable(): string {
  const code = (c: string) => `\`${c}\``;
  const rows = TASK_DEFINITIONS.map((def) => {
    const tool = def.tool
      ? `\`POST ${def.tool.path}\` (waits ${def.tool.defaultWaitS} s; ${def.tool.rateLimit.points} per ${def.tool.rateLimit.windowS} s)`
      : '—';
    const codes = def.failureCodes.length > 0 ? def.failureCodes.map(code).join(', ') : '—';
    return `| ${code(def.name)} | ${code(def.queue)} | ${tool} | ${codes} | ${def.description} |`;
  });
  return [
    '| Task | Queue | Tool route (default wait; budget) | Its own failure codes | What it does |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Every task may also fail with ${COMMON_FAILURE_CODES.map(code).join(', ')}.`,
  ].join('\n');
}

/** The body of .env.app / .env.tasks: every variable, commented out at its default. */
export function envFileBody(service: 'gateway' | 'worker'): string {
  const vars =
    service === 'gateway'
      ? describeConfig(GatewayConfig, GATEWAY_ENV_PREFIX)
      : describeConfig(WorkerConfig, WORKER_ENV_PREFIX);
  return vars.map((v) => `# ${v.variable}=${v.default}`).join('\n');
}

/** Keeps each env file's header comment (up to the first `# PREFIX_` line) and rewrites the rest. */
export function rewriteEnvFile(text: string, service: 'gateway' | 'worker'): string {
  const prefix = service === 'gateway' ? `# ${GATEWAY_ENV_PREFIX}_` : `# ${WORKER_ENV_PREFIX}_`;
  const lines = text.split('\n');
  const first = lines.findIndex((l) => l.startsWith(prefix) && l.includes('='));
  const header = (first === -1 ? lines : lines.slice(0, first)).join('\n').trimEnd();
  return `${header}\n\n${envFileBody(service)}\n`;
}

export const README_CONFIG_BLOCK = /(<!-- config:begin -->\n)[\s\S]*?(\n<!-- config:end -->)/;
export const README_TASKS_BLOCK = /(<!-- tasks:begin -->\n)[\s\S]*?(\n<!-- tasks:end -->)/;

if (import.meta.main) {
  if (process.argv.includes('--write')) {
    const path = new URL('../README.md', import.meta.url);
    const readme = readFileSync(path, 'utf8');
    writeFileSync(
      path,
      readme
        .replace(README_CONFIG_BLOCK, (_m, a: string, b: string) => `${a}${configDoc()}${b}`)
        .replace(README_TASKS_BLOCK, (_m, a: string, b: string) => `${a}${taskTable()}${b}`),
    );
    for (const [file, service] of [
      ['../.env.app', 'gateway'],
      ['../.env.tasks', 'worker'],
    ] as const) {
      const envPath = new URL(file, import.meta.url);
      writeFileSync(envPath, rewriteEnvFile(readFileSync(envPath, 'utf8'), service));
    }
  } else {
    process.stdout.write(`${taskTable()}\n\n${configDoc()}\n`);
  }
}
