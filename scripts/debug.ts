// `npm run debug:gateway` / `npm run debug:worker` [-- --port N] [--host H] [--wait]: starts the
// service's own entry point, with the env files of start:gateway / start:worker, after opening the
// Node inspector on NEUROAGENT_DEBUG__PORT / TASKS_DEBUG__PORT (9229 / 9230) of 127.0.0.1. The
// inspector runs any code a client sends it, with the process's credentials: it is remote code
// execution for whoever reaches the port, so it binds to loopback unless --host (or __HOST) asks
// otherwise. The python sandbox the worker forks never gets an inspector (sandbox-client.ts).
import { open, url } from 'node:inspector';
import { parseArgs } from 'node:util';
import { type TObject, Type } from '@sinclair/typebox';
import { GATEWAY_ENV_PREFIX, GatewayConfig } from '../services/gateway/src/config.ts';
import { loadConfig } from '../services/platform/src/config.ts';
import { WORKER_ENV_PREFIX, WorkerConfig } from '../services/worker/src/config.ts';

const USAGE = 'usage: node scripts/debug.ts <gateway|worker> [--port <port>] [--host <address>] [--wait]';

export const DEBUG_TARGETS = {
  gateway: {
    prefix: GATEWAY_ENV_PREFIX,
    settings: GatewayConfig.properties.debug,
    main: new URL('../services/gateway/src/main.ts', import.meta.url).href,
  },
  worker: {
    prefix: WORKER_ENV_PREFIX,
    settings: WorkerConfig.properties.debug,
    main: new URL('../services/worker/src/main.ts', import.meta.url).href,
  },
} as const;
export type DebugTarget = keyof typeof DEBUG_TARGETS;

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Where the inspector of `target` listens: the command line over PREFIX_DEBUG__*, over the defaults. */
export function inspectorAddress(
  target: DebugTarget,
  env: Record<string, string | undefined>,
  flags: { port?: string; host?: string },
): { port: number; host: string } {
  const { prefix, settings } = DEBUG_TARGETS[target];
  // Only the debug variables: the rest of the env file belongs to the service's own loader.
  const own = `${prefix}_DEBUG__`;
  const debugEnv = Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith(own)));
  if (flags.port !== undefined) debugEnv[`${own}PORT`] = flags.port;
  if (flags.host !== undefined) debugEnv[`${own}HOST`] = flags.host;
  const schema: TObject = Type.Object({ debug: settings });
  const { debug } = loadConfig(schema, prefix, debugEnv) as { debug: { port: number; host: string } };
  return debug;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      wait: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const target = positionals[0];
  if (positionals.length !== 1 || (target !== 'gateway' && target !== 'worker')) {
    process.stderr.write(`debug: ${USAGE}\n`);
    process.exit(64);
  }
  let where: { port: number; host: string };
  try {
    where = inspectorAddress(target, process.env, values);
  } catch (err) {
    process.stderr.write(`debug: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(78);
  }
  if (!LOOPBACK.has(where.host)) {
    process.stderr.write(
      `debug: warning: the inspector listens on ${where.host}: anyone who reaches ${where.host}:${where.port} can run any code in the ${target}, with its credentials\n`,
    );
  }
  if (values.wait) process.stderr.write(`debug: waiting for a debugger before starting the ${target}\n`);
  // Node prints "Debugger listening on ws://…" itself; MUST come before the service's first line,
  // so that a debugger attached with --wait sees start-up too.
  open(where.port, where.host, values.wait);
  const at = new URL(url() ?? `ws://${where.host}:${where.port}`);
  process.stderr.write(
    `debug: attach with chrome://inspect (Configure… ${at.host}) or the VS Code configuration "Attach to ${target}"\n`,
  );
  await import(DEBUG_TARGETS[target].main);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`debug: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
