// `npm start`: runs the gateway and the worker for local development, their output tagged
// [gateway] / [worker] and their JSON logs pretty-printed (`npm start -- --json` keeps JSON), after making sure NATS and Redis answer (running local ones under .data/
// when the default address is free and the binary is installed). This is the only file of the dev
// runner that reads process.env, handles signals or exits; it must not import service code.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadOrCreateSecretFile } from '../services/platform/src/secret-file.ts';
import { describeExit, exited, killAllNow, spawnTagged, stopChild } from './lib/child-process.ts';
import { checkDependencies } from './lib/dependencies.ts';
import { GATEWAY_ENV_FILE, loadDevConfig, WORKER_ENV_FILE } from './lib/dev-config.ts';
import { DevError } from './lib/dev-error.ts';
import { type LocalService, NATS_SERVER, REDIS_SERVER, startLocalService } from './lib/local-services.ts';
import { formatTag, type TagColour } from './lib/prefix-lines.ts';
import { prettyLogLines } from './lib/pretty-logs.ts';
import { waitForHttpOk } from './lib/probe.ts';
import { buildUi, uiBuildState, viteAvailable } from './lib/ui-build.ts';

const ROOT = resolve(import.meta.dirname, '..');
/** `npm start -- --json`: show the services' log lines as the JSON they write. */
const JSON_LOGS = process.argv.includes('--json');

const PROBE_TIMEOUT_MS = 1000;
/** The default of NEUROAGENT_NATS__SIGNING_KEY_FILE and TASKS_NATS__SIGNING_KEY_FILE. */
const DEFAULT_SIGNING_KEY_FILE = '.data/task-signing-key';
const LOCAL_START_TIMEOUT_MS = 15_000;
const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 250;
// Above the worker's own TASKS_SHUTDOWN_GRACE_S default (30 s) plus its close-down, so a dev stop never
// kills a task the worker would have finished.
const APP_STOP_GRACE_MS = 45_000;
const LOCAL_STOP_GRACE_MS = 5_000;
const FORCE_AFTER_MS = 1000;

const APPS: { name: string; colour: TagColour; envFile: string; entry: string }[] = [
  { name: 'gateway', colour: 'cyan', envFile: GATEWAY_ENV_FILE, entry: 'services/gateway/src/main.ts' },
  { name: 'worker', colour: 'magenta', envFile: WORKER_ENV_FILE, entry: 'services/worker/src/main.ts' },
];

const localServices: LocalService[] = [];
const apps: ChildProcess[] = [];
let stopping: Promise<void> | undefined;

function say(text: string): void {
  const tag = formatTag('dev', 'yellow', process.stdout);
  for (const line of text.split('\n')) process.stdout.write(`${tag} ${line}\n`);
}

function complain(text: string): void {
  const tag = formatTag('dev', 'yellow', process.stderr);
  for (const line of text.split('\n')) process.stderr.write(`${tag} ${line}\n`);
}

async function main(): Promise<void> {
  // Step 1: the addresses the services will use (environment over .env.app / .env.tasks). A missing
  // entry point fails here, before any server is started in vain.
  const config = loadDevConfig(ROOT, process.env);
  for (const app of APPS) {
    if (!existsSync(join(ROOT, app.entry))) {
      throw new DevError('entry_missing', `${app.entry} does not exist`);
    }
  }

  // Step 2: NATS and Redis must answer before the services boot; start local ones where we may.
  const check = await checkDependencies(
    [
      { spec: NATS_SERVER, uses: [config.gateway.nats, config.worker.nats] },
      { spec: REDIS_SERVER, uses: [config.gateway.redis, config.worker.redis] },
    ],
    process.env.PATH,
    PROBE_TIMEOUT_MS,
  );
  if (check.problems.length > 0) throw new DevError('dependency_unavailable', check.problems.join('\n'));
  for (const plan of check.start) {
    const { spec, target } = plan;
    say(
      `${spec.label} does not answer: starting ${plan.command} on ${target.host}:${target.port} (data in .data/${spec.name})`,
    );
    const service = await startLocalService(spec, {
      command: plan.command,
      ...target,
      dataDir: join(ROOT, '.data', spec.name),
      cwd: ROOT,
      env: process.env,
      timeoutMs: LOCAL_START_TIMEOUT_MS,
    });
    localServices.push(service);
    watch(service.child, spec.binary);
    // A signal may have come while we waited; shutdown() has it from here.
    if (stopping !== undefined) return;
  }

  // The gateway signs task messages and the worker verifies them with one shared key. Neither
  // service generates a key itself (each would make up its own), so the dev runner does, at the
  // services' default path (NATS__SIGNING_KEY_FILE), unless a key or another file is configured.
  const key = loadOrCreateSecretFile(join(ROOT, DEFAULT_SIGNING_KEY_FILE));
  if (key.created) say(`generated the task signing key ${DEFAULT_SIGNING_KEY_FILE} (mode 0600)`);

  // The gateway serves the dashboard at /ui from its build; a missing or stale one is rebuilt here
  // (a second or so). A failed build is reported and /ui answers 503 until it is fixed.
  const ui = uiBuildState();
  if (ui !== 'fresh') {
    if (!viteAvailable()) say('the dashboard is not built and vite is not installed: /ui will answer 503');
    else {
      try {
        say(`the dashboard build is ${ui === 'missing' ? 'missing' : 'older than its sources'}: building it`);
        say(`built the dashboard in ${await buildUi()} ms`);
      } catch (err) {
        complain(`could not build the dashboard: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (stopping !== undefined) return;
  }

  // Step 3: the gateway and the worker, exactly as `npm run start:gateway` / `start:worker` run them.
  for (const app of APPS) {
    const child = spawnTagged({
      name: app.name,
      colour: app.colour,
      command: process.execPath,
      args: [`--env-file-if-exists=${app.envFile}`, app.entry],
      cwd: ROOT,
      ...(JSON_LOGS ? {} : { format: prettyLogLines(process.stdout) }),
      // One local worker serves every queue (the services' own default is python_q only).
      env: app.name === 'worker' ? { ...process.env, TASKS_QUEUES: config.worker.queues } : process.env,
    });
    apps.push(child);
    watch(child, app.name);
  }

  // Step 4: say where to send requests once the gateway is ready.
  const { httpHost, httpPort } = config.gateway;
  if (httpPort === 0) {
    say('NEUROAGENT_HTTP__PORT=0: the gateway picks its own port; see its [gateway] lines');
    return;
  }
  const base = `http://${reachableHost(httpHost)}:${httpPort}`;
  const ready = await waitForHttpOk(
    `${base}/readyz`,
    READY_TIMEOUT_MS,
    READY_POLL_MS,
    () => stopping !== undefined,
  );
  if (stopping !== undefined) return;
  if (!ready) {
    complain(
      `${base}/readyz did not answer 200 within ${READY_TIMEOUT_MS / 1000} s; still running, see the [gateway] lines`,
    );
    return;
  }
  say(`gateway ready at ${base}; get a dev token, then try:`);
  say('  TOKEN=$(npm run -s token -- --sub alice)');
  say(
    `  curl -s -X POST ${base}/tools/run-python -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' ` +
      `-d '{"python_script":"print(1+1)\\n6*7"}'`,
  );
  say(`  API description: ${base}/docs`);
  say(`  dashboard: ${base}/ui/ (sign in with: npm run -s token -- --sub ops --admin)`);
}

// A server bound to every interface is reached on loopback; an IPv6 literal needs brackets.
function reachableHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function watch(child: ChildProcess, name: string): void {
  void exited(child).then((status) => {
    if (stopping === undefined) {
      void shutdown({ code: 1 }, `${name} stopped unexpectedly (${describeExit(status)}); stopping the rest`);
    }
  });
}

function shutdown(outcome: { code: number } | { signal: NodeJS.Signals }, reason: string): Promise<void> {
  stopping ??= (async () => {
    ('signal' in outcome ? say : complain)(reason);
    // MUST stop the gateway and the worker before NATS and Redis: on SIGTERM they drain their NATS
    // connection and hand back in-flight tasks, which needs both servers up.
    await Promise.all(apps.map((child) => stopChild(child, APP_STOP_GRACE_MS)));
    for (const service of [...localServices].reverse()) await service.stop(LOCAL_STOP_GRACE_MS);
    if ('signal' in outcome) {
      // Die of the same signal, so that npm and the shell see how we ended. Dying of a signal skips
      // the 'exit' handler, so kill here what was still starting when the signal came.
      killAllNow();
      process.removeAllListeners(outcome.signal);
      process.kill(process.pid, outcome.signal);
    } else {
      process.exit(outcome.code);
    }
  })();
  return stopping;
}

// Children run in their own process groups (see lib/child-process.ts), so a Ctrl-C reaches only
// us and we stop them in order. A second signal gives up on order, unless it comes within
// FORCE_AFTER_MS: npm forwards the terminal's SIGINT, so where its script shell execs us, one
// Ctrl-C under `npm start` arrives twice.
let firstSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping !== undefined) {
      if (Date.now() - firstSignalAt < FORCE_AFTER_MS) return;
      complain(`${signal} again: killing every child process`);
      killAllNow();
      process.exit(1);
    }
    firstSignalAt = Date.now();
    void shutdown({ signal }, `${signal}: stopping the gateway and the worker, then what we started`);
  });
}
// Last resort for an exit that skipped shutdown(): detached children would outlive us.
process.on('exit', killAllNow);

main().catch((err: unknown) => {
  const message =
    err instanceof DevError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  void shutdown({ code: 1 }, message);
});
