// Checks docker-compose.yml, the .env files and the Dockerfiles against the real config schemas, so
// a renamed variable, a moved env_file or a Dockerfile that drags Pyodide into the gateway fails here
// instead of at `docker compose up`. Reads files only: no Docker daemon is needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { QUEUES } from '@neuroagent/contracts';
import { parse } from 'yaml';
import { GATEWAY_ENV_PREFIX, GatewayConfig, loadGatewayConfig } from '../services/gateway/src/config.ts';
import { createMetrics } from '../services/gateway/src/metrics.ts';
import { describeConfig } from '../services/platform/src/config.ts';
import { loadWorkerConfig, WORKER_ENV_PREFIX, WorkerConfig } from '../services/worker/src/config.ts';
import { createWorkerMetrics } from '../services/worker/src/metrics.ts';
import { SANDBOX_FALLBACKS } from '../services/worker/src/python/isolation-stats.ts';
import { PREPARATIONS } from '../services/worker/src/python/protocol.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
/** The standard OpenTelemetry variables compose passes to the services (read by their tracing). */
const OTEL_VARIABLES = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_SERVICE_NAME'];

// ---------------------------------------------------------------------------------------------------
// Compose file
// ---------------------------------------------------------------------------------------------------

export interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  env_file?: string | (string | { path: string })[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { target: number; published?: string | number })[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
  depends_on?: string[] | Record<string, { condition?: string }>;
  deploy?: { replicas?: number };
  container_name?: string;
  networks?: string[] | Record<string, unknown>;
  volumes?: (string | { type?: string; source?: string; target: string; read_only?: boolean })[];
  command?: string | string[];
  profiles?: string[];
}
export interface ComposeFile {
  version?: unknown;
  services: Record<string, ComposeService>;
  networks?: Record<string, { internal?: boolean; external?: boolean } | null>;
  volumes?: Record<string, unknown>;
}

export function loadCompose(text: string): ComposeFile {
  const doc = parse(text) as ComposeFile;
  assert.ok(doc && typeof doc.services === 'object', 'compose file has no services');
  return doc;
}

export function service(compose: ComposeFile, name: string): ComposeService {
  const svc = compose.services[name];
  assert.ok(svc, `service ${name} is missing`);
  return svc;
}

/** env_file in any of its compose forms (string, list of strings, list of {path}). */
export function envFiles(svc: ComposeService): string[] {
  const raw = svc.env_file;
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((f) => (typeof f === 'string' ? f : f.path));
}

/** `environment:` as a map, from either its map or its `KEY=value` list form. */
export function environment(svc: ComposeService): Record<string, string | undefined> {
  const raw = svc.environment ?? {};
  const out: Record<string, string | undefined> = {};
  if (Array.isArray(raw)) {
    for (const entry of raw) {
      const i = entry.indexOf('=');
      if (i < 0) out[entry] = undefined;
      else out[entry.slice(0, i)] = entry.slice(i + 1);
    }
    return out;
  }
  for (const [key, value] of Object.entries(raw)) out[key] = value === null ? undefined : String(value);
  return out;
}

export interface PortMapping {
  host: string | undefined;
  container: number;
}

/** Published ports from the short ("[ip:]host:container[/proto]") and the long syntax. */
export function ports(svc: ComposeService): PortMapping[] {
  return (svc.ports ?? []).map((p) => {
    if (typeof p === 'object') {
      return { host: p.published === undefined ? undefined : String(p.published), container: p.target };
    }
    const parts = String(p).split('/')[0]!.split(':');
    const container = Number(parts.at(-1));
    return { host: parts.length > 1 ? parts.at(-2) : undefined, container };
  });
}

/** depends_on as service → condition; the list form means `service_started`. */
export function dependsOn(svc: ComposeService): Record<string, string> {
  const raw = svc.depends_on ?? [];
  if (Array.isArray(raw)) return Object.fromEntries(raw.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(raw).map(([name, d]) => [name, d.condition ?? 'service_started']));
}

/** Networks a service joins, in either form; none listed means compose's `default` network. */
export function serviceNetworks(svc: ComposeService): string[] {
  const raw = svc.networks;
  if (raw === undefined) return ['default'];
  return Array.isArray(raw) ? raw : Object.keys(raw);
}

/** Only a network declared with `internal: true` has no route out; `default` and external ones do. */
export function isInternalNetwork(compose: ComposeFile, name: string): boolean {
  const net = compose.networks?.[name];
  return net?.internal === true && net.external !== true;
}

export interface Mount {
  source: string | undefined;
  target: string;
  readOnly: boolean;
  /** A named volume (declared under top-level `volumes:`), not a host path or an anonymous volume. */
  named: boolean;
}

/** `volumes:` of a service, from the short ("[source:]target[:mode]") and the long syntax. */
export function mounts(svc: ComposeService): Mount[] {
  const isNamed = (type: string | undefined, source: string | undefined) =>
    source !== undefined && (type ?? 'volume') === 'volume' && !/^[./~]/.test(source);
  return (svc.volumes ?? []).map((v) => {
    if (typeof v === 'object') {
      const type = v.type ?? (v.source && /^[./~]/.test(v.source) ? 'bind' : 'volume');
      return {
        source: v.source,
        target: v.target,
        readOnly: v.read_only === true,
        named: isNamed(type, v.source),
      };
    }
    const parts = v.split(':');
    if (parts.length === 1) return { source: undefined, target: parts[0]!, readOnly: false, named: false };
    const [source, target, mode = ''] = parts as [string, string, string?];
    return { source, target, readOnly: mode.split(',').includes('ro'), named: isNamed(undefined, source) };
  });
}

/** Host names of the URLs in a comma-separated list (`nats://a:4222,nats://b:4222`). */
export function urlHosts(value: string): string[] {
  return value
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
    .map((u) => new URL(u).hostname);
}

export function hasHealthcheck(svc: ComposeService): boolean {
  const test = svc.healthcheck?.test;
  if (svc.healthcheck?.disable || test === undefined || test.length === 0) return false;
  return !(Array.isArray(test) && test[0] === 'NONE');
}

// ---------------------------------------------------------------------------------------------------
// .env files and config variables
// ---------------------------------------------------------------------------------------------------

/** KEY=value lines of an env file; comments and blank lines are ignored, quotes stripped. */
export function parseEnvFile(text: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim().replace(/^export\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i < 0) {
      out[line] = undefined;
      continue;
    }
    const value = line.slice(i + 1).trim();
    const quoted = /^(['"]).*\1$/.test(value);
    out[line.slice(0, i).trim()] = quoted ? value.slice(1, -1) : value;
  }
  return out;
}

/** Names under `prefix_` that the schema does not declare: the config loader would reject them. */
export function undeclaredVariables(
  names: Iterable<string>,
  declared: readonly { variable: string }[],
  prefix: string,
): string[] {
  const known = new Set(declared.map((v) => v.variable));
  return [...names].filter((n) => n.startsWith(`${prefix}_`) && !known.has(n));
}

/** What a container sees: env_file values, overridden by `environment:` (compose's precedence). */
export function containerEnv(svc: ComposeService): Record<string, string | undefined> {
  const fromFiles = Object.assign({}, ...envFiles(svc).map((f) => parseEnvFile(read(f))));
  return { ...fromFiles, ...environment(svc) };
}

// ---------------------------------------------------------------------------------------------------
// Dockerfiles and the lockfile
// ---------------------------------------------------------------------------------------------------

export interface Instruction {
  op: string;
  args: string;
}

/** Instructions with `\` continuations joined and comments dropped. */
export function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s+(.*)$/.exec(full);
    if (m) out.push({ op: m[1]!.toUpperCase(), args: m[2]! });
  }
  return out;
}

export function npmCiCommand(instructions: Instruction[]): string {
  const runs = instructions.filter((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
  assert.equal(runs.length, 1, 'expected exactly one RUN with npm ci');
  return runs[0]!.args;
}

/** Values of --workspace / --workspace= / -w in a command line. */
export function workspacesOf(command: string): string[] {
  return [...command.matchAll(/(?:--workspace|-w)(?:=|\s+)(\S+)/g)].map((m) => m[1]!);
}

export function execForm(instructions: Instruction[], op: string): string[] {
  const found = instructions.filter((i) => i.op === op);
  assert.equal(found.length, 1, `expected exactly one ${op}`);
  const value: unknown = JSON.parse(found[0]!.args);
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === 'string'), `${op} must be exec form`);
  return value;
}

/** Variables set by ENV instructions (`KEY=value ...` and the legacy `KEY value`), later ones winning. */
export function dockerEnv(instructions: Instruction[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { op, args } of instructions) {
    if (op !== 'ENV') continue;
    if (!/^\S+=/.test(args)) {
      const m = /^(\S+)\s+(.*)$/.exec(args);
      if (m) out[m[1]!] = m[2]!;
      continue;
    }
    for (const m of args.matchAll(/(\S+?)=("[^"]*"|\S*)/g)) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

export function copies(instructions: Instruction[]): { sources: string[]; dest: string }[] {
  return instructions
    .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    .map((i) => {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
    });
}

/** The instructions of the last stage, the image that runs; build stages come before it. */
export function finalStage(instructions: Instruction[]): Instruction[] {
  return instructions.slice(instructions.findLastIndex((i) => i.op === 'FROM') + 1);
}

interface LockPackage {
  link?: boolean;
  resolved?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/**
 * Package names `npm ci --omit=dev --workspace <ws>` may install, walked from package-lock.json with
 * npm's lookup (nearest node_modules upwards, workspace links followed to their folders). An upper
 * bound: optional packages for other platforms are included, which npm would skip.
 */
export function productionClosure(
  lock: { packages: Record<string, LockPackage> },
  workspace: string,
): Set<string> {
  const { packages } = lock;
  const resolve = (from: string, name: string): string | undefined => {
    let base = from;
    for (;;) {
      const location = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
      if (packages[location]) return location;
      if (base === '') return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i >= 0 ? base.slice(0, i) : '';
    }
  };
  const names = new Set<string>();
  const seen = new Set<string>();
  const queue = [workspace];
  while (queue.length > 0) {
    let location = queue.pop()!;
    let pkg = packages[location];
    if (pkg?.link && pkg.resolved !== undefined) {
      location = pkg.resolved;
      pkg = packages[location];
    }
    if (!pkg || seen.has(location)) continue;
    seen.add(location);
    const deps = { ...pkg.peerDependencies, ...pkg.optionalDependencies, ...pkg.dependencies };
    for (const name of Object.keys(deps)) {
      const target = resolve(location, name);
      if (target === undefined) continue; // an optional or peer dependency npm did not install
      names.add(name);
      queue.push(target);
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

const compose = loadCompose(read('docker-compose.yml'));
const gatewayVars = describeConfig(GatewayConfig, GATEWAY_ENV_PREFIX);
const workerVars = describeConfig(WorkerConfig, WORKER_ENV_PREFIX);
const gatewayStages = dockerInstructions(read('infra/gateway.Dockerfile'));
const gatewayDockerfile = finalStage(gatewayStages);
const workerDockerfile = dockerInstructions(read('infra/worker.Dockerfile'));

describe('docker-compose.yml services', () => {
  const expected = ['nats', 'redis', 'postgres', 'minio', 'gateway', 'python-worker'];

  it('defines every long-running service with a health check', () => {
    for (const name of expected) {
      assert.ok(hasHealthcheck(service(compose, name)), `${name} has no healthcheck`);
    }
  });

  it('creates the bucket with a one-shot minio-init that waits for a healthy minio', () => {
    const init = service(compose, 'minio-init');
    assert.equal(dependsOn(init).minio, 'service_healthy');
    assert.match(JSON.stringify(init), /mc mb [^"]*local\/neuroagent/);
  });

  it('starts gateway and python-worker only after nats and redis are healthy', () => {
    for (const name of ['gateway', 'python-worker']) {
      const deps = dependsOn(service(compose, name));
      for (const dep of ['nats', 'redis']) assert.equal(deps[dep], 'service_healthy', `${name} → ${dep}`);
    }
  });

  it('has no top-level version key', () => {
    assert.equal(compose.version, undefined);
  });
});

describe('compose environment and .env files', () => {
  const cases = [
    { name: 'gateway', file: '.env.app', vars: gatewayVars, prefix: GATEWAY_ENV_PREFIX },
    { name: 'python-worker', file: '.env.tasks', vars: workerVars, prefix: WORKER_ENV_PREFIX },
  ];

  for (const c of cases) {
    it(`${c.name} reads ${c.file}, which exists at the repo root`, () => {
      assert.deepEqual(envFiles(service(compose, c.name)), [c.file]);
      assert.ok(existsSync(join(ROOT, c.file)), `${c.file} is missing`);
    });

    it(`${c.name} sets only ${c.prefix}_* variables its config schema declares (and OTEL_*)`, () => {
      const keys = Object.keys(environment(service(compose, c.name)));
      assert.ok(keys.length > 0);
      assert.deepEqual(undeclaredVariables(keys, c.vars, c.prefix), []);
      assert.deepEqual(
        keys.filter((k) => !k.startsWith(`${c.prefix}_`) && !OTEL_VARIABLES.includes(k)),
        [],
        `${c.name} environment has foreign variables`,
      );
    });

    it(`every active line of ${c.file} is a declared ${c.prefix}_* variable`, () => {
      const keys = Object.keys(parseEnvFile(read(c.file)));
      assert.deepEqual(
        keys.filter((k) => !k.startsWith(`${c.prefix}_`)),
        [],
        `${c.file} has foreign variables`,
      );
      assert.deepEqual(undeclaredVariables(keys, c.vars, c.prefix), []);
    });
  }

  it('the config loaders accept what each container sees', () => {
    assert.doesNotThrow(() => loadGatewayConfig(containerEnv(service(compose, 'gateway'))));
    assert.doesNotThrow(() => loadWorkerConfig(containerEnv(service(compose, 'python-worker'))));
  });

  it('python-worker consumes python_q only', () => {
    const svc = service(compose, 'python-worker');
    assert.equal(environment(svc).TASKS_QUEUES, 'python_q');
    assert.deepEqual(loadWorkerConfig(containerEnv(svc)).queues, ['python_q']);
  });

  it('flags a misspelt or invented variable', () => {
    const found = undeclaredVariables(
      ['NEUROAGENT_HTTP__PROT', 'NEUROAGENT_HTTP__PORT', 'TASKS_QUEUES', 'PATH'],
      gatewayVars,
      GATEWAY_ENV_PREFIX,
    );
    assert.deepEqual(found, ['NEUROAGENT_HTTP__PROT']);
    assert.deepEqual(parseEnvFile('# TASKS_X=1\n\nTASKS_Y="a b"\nexport TASKS_Z=2\n'), {
      TASKS_Y: 'a b',
      TASKS_Z: '2',
    });
  });
});

describe('queues', () => {
  it('has a consumer for every queue of the task registry', () => {
    // A queue nobody consumes accepts tasks that sit pending until they expire.
    const consumed = new Set<string>();
    for (const svc of Object.values(compose.services)) {
      const build = typeof svc.build === 'object' ? svc.build : undefined;
      if (build?.dockerfile !== 'infra/worker.Dockerfile') continue;
      for (const queue of loadWorkerConfig(containerEnv(svc)).queues) consumed.add(queue);
    }
    const missing = QUEUES.filter((q) => !consumed.has(q));
    assert.deepEqual(
      missing,
      [],
      `docker-compose.yml has no consumer for queue(s) ${missing.join(', ')}: add each to the TASKS_QUEUES of a worker service`,
    );
  });
});

describe('gateway port', () => {
  const svc = service(compose, 'gateway');
  const portVar = gatewayVars.find((v) => v.variable === 'NEUROAGENT_HTTP__PORT');

  it('publishes the port the gateway listens on, on the same host port', () => {
    assert.ok(portVar);
    assert.equal(portVar.default, '8078');
    const listening = loadGatewayConfig(containerEnv(svc)).http.port;
    assert.equal(listening, Number(portVar.default), '.env.app or environment moved the port');
    assert.deepEqual(ports(svc), [{ host: String(listening), container: listening }]);
  });

  it('health-checks /readyz on that port', () => {
    assert.ok(portVar);
    const test = JSON.stringify(svc.healthcheck?.test);
    assert.match(test, new RegExp(`http://127\\.0\\.0\\.1:${portVar.default}/readyz`));
  });

  it('parses both port syntaxes', () => {
    assert.deepEqual(ports({ ports: ['127.0.0.1:1:2/tcp', '3:4', 5, { target: 6, published: '7' }] }), [
      { host: '1', container: 2 },
      { host: '3', container: 4 },
      { host: undefined, container: 5 },
      { host: '7', container: 6 },
    ]);
  });
});

describe('python-worker scaling and health', () => {
  const svc = service(compose, 'python-worker');

  it('can be scaled on its own (one replica by default, no fixed name or host port)', () => {
    assert.equal(svc.deploy?.replicas, 1);
    assert.equal(svc.container_name, undefined);
    assert.deepEqual(ports(svc), []);
  });

  it('checks its heartbeat file with the script the image ships', () => {
    const test = svc.healthcheck?.test;
    assert.ok(Array.isArray(test));
    assert.equal(test[0], 'CMD');
    const at = test.findIndex((arg) => arg.endsWith('healthcheck-file.mjs'));
    assert.ok(at > 0, 'python-worker health check must read the heartbeat file');
    const [script, file] = [test[at]!, test[at + 1]];
    assert.equal(file, loadWorkerConfig(containerEnv(svc)).health_file, 'worker touches another file');
    const workdir = workerDockerfile.findLast((i) => i.op === 'WORKDIR')?.args ?? '/';
    const shipped = copies(workerDockerfile).map((c) => posix.resolve(workdir, c.dest));
    assert.ok(shipped.includes(script), `${script} is not copied into the worker image`);
  });
});

describe('infra/healthcheck-file.mjs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'healthcheck-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(ROOT, 'infra/healthcheck-file.mjs');
  const run = (...args: string[]) => spawnSync(process.execPath, [script, ...args]).status;

  it('exits 0 while the file is younger than the limit', () => {
    const file = join(dir, 'fresh');
    writeFileSync(file, '');
    assert.equal(run(file, '30'), 0);
  });

  it('exits 1 when the file is stale or missing, or the arguments are wrong', () => {
    const file = join(dir, 'stale');
    writeFileSync(file, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    assert.equal(run(file, '30'), 1);
    assert.equal(run(join(dir, 'missing'), '30'), 1);
    assert.equal(run(file), 1);
  });
});

describe('Dockerfiles', () => {
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, LockPackage> };
  const images = [
    { file: 'infra/gateway.Dockerfile', instructions: gatewayDockerfile, workspace: 'services/gateway' },
    { file: 'infra/worker.Dockerfile', instructions: workerDockerfile, workspace: 'services/worker' },
  ];

  for (const image of images) {
    it(`${image.file} installs only the production deps of ${image.workspace}`, () => {
      const command = npmCiCommand(image.instructions);
      assert.deepEqual(workspacesOf(command), [image.workspace]);
      assert.match(command, /--omit=dev\b/);
    });

    it(`${image.file} runs an entry point that exists, as the node user`, () => {
      const cmd = execForm(image.instructions, 'CMD');
      assert.equal(cmd[0], 'node');
      assert.ok(existsSync(join(ROOT, cmd[1]!)), `${cmd[1]} does not exist`);
      assert.ok(cmd[1]!.startsWith(`${image.workspace}/src/`));
      assert.equal(image.instructions.findLast((i) => i.op === 'USER')?.args, 'node');
    });

    it(`${image.file} copies only paths that exist`, () => {
      for (const { sources } of copies(image.instructions)) {
        for (const source of sources) assert.ok(existsSync(join(ROOT, source)), `${source} does not exist`);
      }
    });
  }

  it('never puts pyodide or piscina into the gateway image', () => {
    assert.doesNotMatch(npmCiCommand(gatewayDockerfile), /pyodide|piscina|services\/worker/);
    const gateway = productionClosure(lock, 'services/gateway');
    assert.ok(gateway.has('koa') && gateway.has('@neuroagent/platform'), 'closure walk found nothing');
    for (const name of ['pyodide', 'piscina']) assert.ok(!gateway.has(name), `gateway installs ${name}`);
    const worker = productionClosure(lock, 'services/worker');
    assert.ok(worker.has('pyodide') && worker.has('piscina') && !worker.has('koa'));
  });

  it('builds the dashboard in a build stage and ships only its dist, where the gateway looks', () => {
    const build = gatewayStages.slice(0, gatewayStages.length - gatewayDockerfile.length);
    const stage = /^\S+\s+AS\s+(\S+)$/i.exec(build.find((i) => i.op === 'FROM')?.args ?? '')?.[1];
    assert.ok(stage, 'a named build stage');
    const run = npmCiCommand(build);
    assert.doesNotMatch(run, /--omit=dev/, 'the build stage has the devDependencies (vite)');
    assert.match(run, /npm run build:ui/);
    const shipped = gatewayDockerfile.filter((i) => i.op === 'COPY' && i.args.startsWith('--from='));
    assert.deepEqual(
      shipped.map((i) => i.args),
      [`--from=${stage} /app/services/dashboard/dist services/dashboard/dist`],
    );
    const workdir = gatewayDockerfile.findLast((i) => i.op === 'WORKDIR')?.args ?? '/';
    const uiDir = gatewayVars.find((v) => v.variable === 'NEUROAGENT_UI__DIR')?.default;
    assert.equal(posix.resolve(workdir, String(uiDir)), posix.resolve(workdir, 'services/dashboard/dist'));
  });

  it('exposes the gateway port', () => {
    const exposed = gatewayDockerfile.filter((i) => i.op === 'EXPOSE').map((i) => i.args);
    assert.deepEqual(exposed, [gatewayVars.find((v) => v.variable === 'NEUROAGENT_HTTP__PORT')?.default]);
  });
});

describe('networks and egress', () => {
  const worker = service(compose, 'python-worker');
  const gateway = service(compose, 'gateway');

  it('attaches python-worker only to internal networks: the code it runs gets no egress', () => {
    const nets = serviceNetworks(worker);
    assert.ok(nets.length > 0);
    for (const net of nets) {
      assert.ok(
        isInternalNetwork(compose, net),
        `python-worker joins ${net}, which is not internal: Python code would reach the internet`,
      );
    }
  });

  it('attaches the gateway to a non-internal network', () => {
    assert.ok(
      serviceNetworks(gateway).some((n) => !isInternalNetwork(compose, n)),
      'the gateway joins only internal networks',
    );
  });

  it('keeps every service that publishes ports on a non-internal network', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      if (ports(svc).length === 0) continue;
      assert.ok(
        serviceNetworks(svc).some((n) => !isInternalNetwork(compose, n)),
        `${name} publishes ports but joins only internal networks, so nothing is published`,
      );
    }
  });

  it('declares every network a service joins', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const net of serviceNetworks(svc)) {
        if (net !== 'default') assert.ok(compose.networks && net in compose.networks, `${name}: ${net}`);
      }
    }
  });

  it('shares a network between each client and every server its config names', () => {
    const clients = [
      { name: 'gateway', config: loadGatewayConfig(containerEnv(gateway)) },
      { name: 'python-worker', config: loadWorkerConfig(containerEnv(worker)) },
    ];
    for (const { name, config } of clients) {
      const own = new Set(serviceNetworks(service(compose, name)));
      const hosts = [config.nats.url, config.redis.url, config.storage.endpoint_url].flatMap(urlHosts);
      assert.equal(hosts.length, 3, `${name} should name nats, redis and minio`);
      for (const host of hosts) {
        assert.ok(
          serviceNetworks(service(compose, host)).some((n) => own.has(n)),
          `${name} shares no network with ${host}`,
        );
      }
    }
  });

  it('tells internal networks apart, in both network syntaxes', () => {
    const file: ComposeFile = { services: {}, networks: { a: { internal: true }, b: {}, c: null } };
    assert.deepEqual(serviceNetworks({}), ['default']);
    assert.deepEqual(serviceNetworks({ networks: ['a'] }), ['a']);
    assert.deepEqual(serviceNetworks({ networks: { a: null, b: {} } }), ['a', 'b']);
    assert.deepEqual(
      ['a', 'b', 'c', 'default'].map((n) => isInternalNetwork(file, n)),
      [true, false, false, false],
    );
  });
});

describe('artifact storage in minio', () => {
  const minioEnv = environment(service(compose, 'minio'));
  const init = String(service(compose, 'minio-init').command);
  const alias = /mc alias set local (\S+) (\S+) (\S+)/.exec(init);
  const bucket = /mc mb (?:--\S+ )*local\/(\S+)/.exec(init)?.[1];
  const clients = [
    { name: 'gateway', storage: loadGatewayConfig(containerEnv(service(compose, 'gateway'))).storage },
    {
      name: 'python-worker',
      storage: loadWorkerConfig(containerEnv(service(compose, 'python-worker'))).storage,
    },
  ];

  it("minio-init logs in as minio's root user", () => {
    assert.ok(alias, 'minio-init sets no mc alias');
    assert.equal(new URL(alias[1]!).hostname, 'minio');
    assert.ok(minioEnv.MINIO_ROOT_USER && minioEnv.MINIO_ROOT_PASSWORD, 'minio has no root user');
    assert.deepEqual(alias.slice(2), [minioEnv.MINIO_ROOT_USER, minioEnv.MINIO_ROOT_PASSWORD]);
  });

  for (const { name, storage } of clients) {
    it(`${name} stores artifacts in minio's bucket, path-style, checksums only when required`, () => {
      assert.equal(storage.enabled, true, `${name} has storage disabled`);
      assert.ok(alias);
      assert.notEqual(storage.endpoint_url, '', `${name} would use the AWS endpoint`);
      assert.equal(new URL(storage.endpoint_url).origin, new URL(alias[1]!).origin, `${name} endpoint`);
      assert.equal(storage.force_path_style, true, `${name} force_path_style`);
      assert.equal(storage.checksum_when_required, true, `${name} checksum_when_required`);
      assert.ok(bucket);
      assert.equal(storage.bucket, bucket, `${name} uses another bucket than minio-init creates`);
    });

    it(`${name} signs with minio's root user`, () => {
      assert.ok(minioEnv.MINIO_ROOT_USER && minioEnv.MINIO_ROOT_PASSWORD, 'minio has no root user');
      assert.equal(storage.access_key, minioEnv.MINIO_ROOT_USER, `${name} access key`);
      assert.equal(storage.secret_key, minioEnv.MINIO_ROOT_PASSWORD, `${name} secret key`);
    });
  }

  it('starts python-worker after minio is healthy and minio-init has created the bucket', () => {
    const deps = dependsOn(service(compose, 'python-worker'));
    assert.equal(deps.minio, 'service_healthy');
    assert.equal(deps['minio-init'], 'service_completed_successfully');
  });
});

describe('python-worker packages and snapshot', () => {
  const svc = service(compose, 'python-worker');
  const python = loadWorkerConfig(containerEnv(svc)).python;

  it('sets TASKS_PYTHON__PRELOAD only together with TASKS_PYTHON__PACKAGES_URL', () => {
    let workers = 0;
    for (const [name, s] of Object.entries(compose.services)) {
      const env = containerEnv(s);
      if (!Object.keys(env).some((k) => k.startsWith(`${WORKER_ENV_PREFIX}_`))) continue;
      workers++;
      const { preload, packages_url } = loadWorkerConfig(env).python;
      if (preload.length > 0) {
        assert.notEqual(
          packages_url.trim(),
          '',
          `${name} preloads ${preload.join(',')} without a package source`,
        );
      }
    }
    assert.ok(workers > 0, 'found no worker service');
  });

  it("preloads the original's packages except plotly (not in Pyodide's lock)", () => {
    assert.deepEqual(python.preload, ['numpy', 'pandas', 'pydantic', 'scikit-learn', 'scipy', 'matplotlib']);
  });

  it('mounts its package source read-only at TASKS_PYTHON__PACKAGES_URL', () => {
    const dir = python.packages_url.replace(/\/+$/, '');
    assert.ok(posix.isAbsolute(dir), `${python.packages_url} is not an absolute path in the container`);
    const mount = mounts(svc).find((m) => m.target.replace(/\/+$/, '') === dir);
    assert.ok(mount, `${dir} is not mounted into python-worker`);
    assert.equal(mount.readOnly, true, `${dir} must be mounted read-only`);
  });

  it("keeps snapshots on a named volume at the image's TASKS_PYTHON__SNAPSHOT_DIR", () => {
    const imageDir = dockerEnv(workerDockerfile).TASKS_PYTHON__SNAPSHOT_DIR;
    assert.ok(imageDir && posix.isAbsolute(imageDir), 'the worker image sets no absolute snapshot dir');
    assert.equal(python.snapshot_dir, imageDir, 'compose and the worker image disagree on the snapshot dir');
    const mount = mounts(svc).find((m) => m.target === python.snapshot_dir);
    assert.ok(mount?.named, `${python.snapshot_dir} is not on a named volume`);
    assert.ok(compose.volumes && mount.source! in compose.volumes, `volume ${mount.source} is not declared`);
  });

  it('parses both volume syntaxes', () => {
    assert.deepEqual(
      mounts({
        volumes: ['v:/a', './h:/b:ro', '/c', { type: 'bind', source: '/h', target: '/d', read_only: true }],
      }),
      [
        { source: 'v', target: '/a', readOnly: false, named: true },
        { source: './h', target: '/b', readOnly: true, named: false },
        { source: undefined, target: '/c', readOnly: false, named: false },
        { source: '/h', target: '/d', readOnly: true, named: false },
      ],
    );
  });
});

describe('worker image snapshot', () => {
  const script = 'services/worker/src/build-snapshot.ts';
  const at = workerDockerfile.findIndex(
    (i) => i.op === 'RUN' && /(?:^|[\s&;])node\s+services\/worker\/src\/build-snapshot\.ts\b/.test(i.args),
  );
  const before = workerDockerfile.slice(0, Math.max(at, 0));

  it(`runs ${script}, which exists, after copying the worker source`, () => {
    assert.ok(at >= 0, `infra/worker.Dockerfile does not RUN node ${script}`);
    assert.ok(existsSync(join(ROOT, script)), `${script} does not exist`);
    assert.ok(copies(before).some((c) => c.sources.includes('services/worker/src')));
  });

  it('builds it as the node user, into a folder the node user owns', () => {
    assert.ok(at >= 0);
    const userAt = before.findLastIndex((i) => i.op === 'USER');
    assert.equal(before[userAt]?.args, 'node', 'the snapshot must be built (and owned) by the node user');
    const dir = dockerEnv(before).TASKS_PYTHON__SNAPSHOT_DIR;
    assert.ok(dir && posix.isAbsolute(dir), 'TASKS_PYTHON__SNAPSHOT_DIR is not set before the build');
    const workdir = before.findLast((i) => i.op === 'WORKDIR')?.args ?? '/';
    const setup = before
      .slice(0, userAt)
      .filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join(' ; ');
    for (const path of [dir, posix.resolve(workdir, '.data')]) {
      const p = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      assert.match(setup, new RegExp(`mkdir\\b[^;&|]*\\s${p}(?:\\s|$)`), `${path} is not created as root`);
      assert.match(
        setup,
        new RegExp(`chown\\s+(?:-R\\s+)?node(?::node)?\\b[^;&|]*\\s${p}(?:\\s|$)`),
        `${path} is not node's`,
      );
    }
  });
});

describe('circuit-worker', () => {
  const svc = service(compose, 'circuit-worker');
  const env = environment(svc);

  it('consumes circuit_q and echo_q (never python_q), from the worker image and .env.tasks, with a health check', () => {
    assert.equal(env.TASKS_QUEUES, 'circuit_q,echo_q');
    assert.deepEqual(loadWorkerConfig(containerEnv(svc)).queues, ['circuit_q', 'echo_q']);
    assert.deepEqual(envFiles(svc), ['.env.tasks']);
    assert.equal((svc.build as { dockerfile?: string } | undefined)?.dockerfile, 'infra/worker.Dockerfile');
    assert.ok(svc.healthcheck, 'has a health check');
    assert.equal(env.TASKS_HEALTH_FILE, '/tmp/worker-alive');
  });

  it('has egress (circuits come from pre-signed URLs, SQL from the LLM API) and a cache volume', () => {
    assert.ok(
      serviceNetworks(svc).some((n) => compose.networks?.[n]?.internal !== true),
      'reaches a non-internal network',
    );
    assert.ok(env.TASKS_CIRCUIT__CACHE_DIR, 'cache dir set');
    assert.ok(
      (svc.volumes ?? []).some((v) => String(v).endsWith(`:${env.TASKS_CIRCUIT__CACHE_DIR}`)),
      'the cache dir is a volume',
    );
    assert.ok('TASKS_LLM__OPENAI_TOKEN' in env, 'the LLM key is passed through');
  });
});

describe('gateway ledger and auth in compose', () => {
  const svc = service(compose, 'gateway');
  const env = environment(svc);

  it('points the ledger at the postgres service and waits for it', () => {
    assert.match(String(env.NEUROAGENT_DB__URL), /^postgresql:\/\/[^@]+@postgres:5432\//);
    const deps = svc.depends_on as Record<string, { condition?: string }> | undefined;
    assert.equal(deps?.postgres?.condition, 'service_healthy');
  });

  it('keeps the dev secret in a volume the image makes writable, and ships the token script', () => {
    assert.ok((svc.volumes ?? []).some((v) => String(v).endsWith(':/app/.data')));
    const dockerfile = read('infra/gateway.Dockerfile');
    assert.match(dockerfile, /mkdir -p \/app\/\.data && chown node:node \/app\/\.data/);
    assert.match(dockerfile, /COPY scripts\/token\.ts/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Profiles: observability (Prometheus, Grafana, OTel collector, Jaeger) and debug (the inspector)
// ---------------------------------------------------------------------------------------------------

/** Published port mappings exactly as written, to check the host address they bind. */
function rawPorts(svc: ComposeService): string[] {
  return (svc.ports ?? []).map((p) => (typeof p === 'object' ? JSON.stringify(p) : String(p)));
}

function commandLine(svc: ComposeService): string[] {
  const c = svc.command;
  return c === undefined ? [] : Array.isArray(c) ? c : c.split(/\s+/);
}

function sharesNetwork(a: ComposeService, b: ComposeService): boolean {
  const own = new Set(serviceNetworks(a));
  return serviceNetworks(b).some((n) => own.has(n));
}

/** The host file or folder mounted at `target`, resolved against the repository root. */
function mountedSource(svc: ComposeService, target: string): string {
  const mount = mounts(svc).find((m) => m.target === target);
  assert.ok(mount?.source, `nothing is mounted at ${target}`);
  assert.ok(!mount.named, `${target} is a named volume, not a file of this repository`);
  assert.ok(mount.readOnly, `${target} should be mounted read-only`);
  return join(ROOT, mount.source);
}

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool']);
const PROMQL_OPERATORS = new Set(['and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2']);

/** The metric names a PromQL expression reads: no functions, aggregations, labels or durations. */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    if (
      stripped
        .slice(m.index + word.length)
        .trimStart()
        .startsWith('(')
    )
      continue;
    if (PROMQL_KEYWORDS.has(word) || PROMQL_OPERATORS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

/** Every series name a registry exposes, histograms and summaries with their suffixes. */
async function exposedNames(registry: {
  getMetricsAsJSON(): Promise<{ name: string; type: unknown }[]>;
}): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    const type = String(m.type);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(`${m.name}${s}`);
    else names.add(m.name);
  }
  return names;
}

interface GrafanaPanel {
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; datasource?: { uid?: string } }[];
  panels?: GrafanaPanel[];
}

function dashboardPanels(panels: GrafanaPanel[] = []): GrafanaPanel[] {
  return panels.flatMap((p) => [p, ...dashboardPanels(p.panels)]);
}

interface ScrapeTarget {
  job: string;
  service: string;
  port: number;
  path: string;
}

/** host:port of every static and DNS target of a Prometheus configuration. */
export function scrapeTargets(config: unknown): ScrapeTarget[] {
  const jobs = (config as { scrape_configs?: Record<string, unknown>[] }).scrape_configs ?? [];
  return jobs.flatMap((job) => {
    const name = String(job.job_name);
    const path = String(job.metrics_path ?? '/metrics');
    const statics = ((job.static_configs ?? []) as { targets?: string[] }[]).flatMap((c) =>
      (c.targets ?? []).map((t) => {
        const [service, port] = t.split(':') as [string, string];
        return { job: name, service, port: Number(port), path };
      }),
    );
    const dns = ((job.dns_sd_configs ?? []) as { names?: string[]; port?: number }[]).flatMap((c) =>
      (c.names ?? []).map((n) => ({ job: name, service: n, port: Number(c.port), path })),
    );
    return [...statics, ...dns];
  });
}

const OBSERVABILITY = ['prometheus', 'grafana', 'otel-collector', 'jaeger'];
const OBS = 'infra/observability';

describe('the observability profile', () => {
  const prometheusConfig = parse(read(`${OBS}/prometheus.yml`)) as unknown;
  const targets = scrapeTargets(prometheusConfig);
  const prometheus = service(compose, 'prometheus');
  const grafana = service(compose, 'grafana');
  const collector = service(compose, 'otel-collector');

  it('runs Prometheus, Grafana, the OTel collector and Jaeger under that profile only', () => {
    for (const name of OBSERVABILITY) {
      assert.deepEqual(service(compose, name).profiles, ['observability'], `${name} profiles`);
    }
    for (const name of ['nats', 'redis', 'postgres', 'minio', 'gateway', 'python-worker', 'circuit-worker']) {
      assert.equal(service(compose, name).profiles, undefined, `${name} must start without a profile`);
    }
  });

  it("publishes each UI and the collector's OTLP ports on the host's 127.0.0.1 only", () => {
    for (const name of OBSERVABILITY) {
      for (const p of rawPorts(service(compose, name))) assert.match(p, /^127\.0\.0\.1:/, `${name}: ${p}`);
    }
    assert.deepEqual(
      ports(collector)
        .map((p) => p.container)
        .sort(),
      [4317, 4318],
    );
  });

  it('scrapes the gateway on its HTTP port and every worker on its metrics port, by service name', () => {
    assert.ok(targets.length > 0, 'prometheus.yml has no target');
    const gatewayPortDefault = gatewayVars.find((v) => v.variable === 'NEUROAGENT_HTTP__PORT')?.default;
    for (const t of targets) {
      const svc = service(compose, t.service);
      assert.equal(svc.profiles, undefined, `${t.service} runs only under a profile`);
      assert.equal(t.path, '/metrics', `${t.job} scrapes ${t.path}`);
      assert.ok(sharesNetwork(prometheus, svc), `prometheus shares no network with ${t.service}`);
      if (t.service === 'gateway') {
        const listening = loadGatewayConfig(containerEnv(svc)).http.port;
        assert.equal(t.port, listening, `gateway listens on ${listening}, scraped on ${t.port}`);
        assert.equal(String(t.port), gatewayPortDefault, 'the gateway port is no longer the default');
      } else {
        const { metrics } = loadWorkerConfig(containerEnv(svc));
        // The worker's default is -1 (no metrics server): compose must switch it on.
        assert.ok(environment(svc).TASKS_METRICS__PORT, `${t.service} sets no TASKS_METRICS__PORT`);
        assert.equal(
          t.port,
          metrics.port,
          `${t.service} serves metrics on ${metrics.port}, scraped on ${t.port}`,
        );
        assert.equal(metrics.host, '0.0.0.0', `${t.service} binds its metrics server to ${metrics.host}`);
      }
    }
    const scraped = new Set(targets.map((t) => t.service));
    for (const [name, svc] of Object.entries(compose.services)) {
      const build = typeof svc.build === 'object' ? svc.build.dockerfile : undefined;
      if (svc.profiles !== undefined || !build) continue;
      assert.ok(scraped.has(name), `prometheus does not scrape ${name}`);
    }
  });

  it('reads the scrape targets of both target kinds', () => {
    assert.deepEqual(
      scrapeTargets({
        scrape_configs: [
          { job_name: 'a', static_configs: [{ targets: ['x:1'] }] },
          { job_name: 'b', metrics_path: '/m', dns_sd_configs: [{ names: ['y'], type: 'A', port: 2 }] },
        ],
      }),
      [
        { job: 'a', service: 'x', port: 1, path: '/metrics' },
        { job: 'b', service: 'y', port: 2, path: '/m' },
      ],
    );
  });

  it('mounts the Prometheus configuration that this test reads', () => {
    const config = commandLine(prometheus)
      .find((a) => a.startsWith('--config.file='))
      ?.slice(14);
    assert.ok(config, 'prometheus gets no --config.file');
    assert.equal(mountedSource(prometheus, config), join(ROOT, `${OBS}/prometheus.yml`));
  });

  it('provisions Grafana with the Prometheus service as its datasource and the dashboard folder it mounts', () => {
    const provisioning = mountedSource(grafana, '/etc/grafana/provisioning');
    assert.equal(provisioning, join(ROOT, `${OBS}/grafana/provisioning`));
    const ds = parse(readFileSync(join(provisioning, 'datasources/datasources.yaml'), 'utf8')) as {
      datasources: { type: string; uid: string; url: string; isDefault?: boolean }[];
    };
    const prom = ds.datasources.find((d) => d.type === 'prometheus');
    assert.ok(prom?.isDefault, 'no default Prometheus datasource');
    const url = new URL(prom.url);
    assert.equal(url.hostname, 'prometheus');
    assert.ok(
      ports(prometheus).some((p) => p.container === Number(url.port)),
      `prometheus does not listen on ${url.port}`,
    );
    assert.ok(sharesNetwork(grafana, prometheus), 'grafana shares no network with prometheus');
    for (const d of ds.datasources) {
      const host = new URL(d.url).hostname;
      assert.ok(sharesNetwork(grafana, service(compose, host)), `grafana cannot reach ${host}`);
    }
    const providers = parse(readFileSync(join(provisioning, 'dashboards/dashboards.yaml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    const folder = providers.providers[0]?.options.path;
    assert.ok(folder, 'no dashboard provider');
    assert.equal(mountedSource(grafana, folder), join(ROOT, `${OBS}/grafana/dashboards`));
    const dashboard = JSON.parse(read(`${OBS}/grafana/dashboards/neuroagent.json`)) as {
      panels: GrafanaPanel[];
    };
    for (const panel of dashboardPanels(dashboard.panels)) {
      if (panel.type === 'row') continue;
      assert.equal(panel.datasource?.uid, prom.uid, `panel ${panel.title} uses another datasource`);
    }
  });

  describe('the Grafana dashboard', () => {
    const dashboard = JSON.parse(read(`${OBS}/grafana/dashboards/neuroagent.json`)) as {
      uid?: string;
      panels: GrafanaPanel[];
    };
    const exprs = dashboardPanels(dashboard.panels).flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: String(t.expr ?? '') })),
    );
    let gatewayNames: Set<string>;
    let workerNames: Set<string>;
    let pythonNames: string[];

    before(async () => {
      gatewayNames = await exposedNames(createMetrics().registry);
      const worker = createWorkerMetrics();
      worker.watchPythonSandbox(
        { poolStats: async () => null },
        { kinds: PREPARATIONS, reasons: SANDBOX_FALLBACKS },
      );
      workerNames = await exposedNames(worker.registry);
      pythonNames = [...workerNames].filter((n) => n.startsWith('python_'));
    });

    it('parses, with a uid and panels that query', () => {
      assert.ok(dashboard.uid, 'the dashboard has no uid');
      assert.ok(exprs.length >= 10, `only ${exprs.length} queries`);
      for (const { panel, expr } of exprs) assert.notEqual(expr.trim(), '', `panel ${panel} has no query`);
    });

    it("queries only metrics that the gateway's or the worker's registry exposes", () => {
      const known = new Set([...gatewayNames, ...workerNames]);
      const used = new Set<string>();
      for (const { panel, expr } of exprs) {
        const names = promqlMetricNames(expr);
        assert.ok(names.length > 0, `panel ${panel}: no metric in ${expr}`);
        for (const name of names) {
          assert.ok(known.has(name), `panel ${panel} queries ${name}, which no registry exposes`);
          used.add(name);
        }
      }
      assert.ok(
        [...used].some((n) => gatewayNames.has(n) && !workerNames.has(n)),
        'no gateway metric shown',
      );
      assert.ok(
        [...used].some((n) => workerNames.has(n) && !gatewayNames.has(n)),
        'no worker metric shown',
      );
    });

    it('shows every python sandbox metric', () => {
      assert.ok(pythonNames.length >= 8, pythonNames.join(', '));
      const used = new Set(exprs.flatMap(({ expr }) => promqlMetricNames(expr)));
      for (const name of pythonNames) assert.ok(used.has(name), `the dashboard does not show ${name}`);
    });

    it('reads metric names out of PromQL, and no function, label, duration or keyword', () => {
      assert.deepEqual(
        promqlMetricNames(
          'histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="gateway", x=~"a|b"}[$__rate_interval])))',
        ),
        ['http_request_duration_seconds_bucket'],
      );
      assert.deepEqual(
        promqlMetricNames(
          'sum(rate(a_total{kind="reset"}[5m])) / on (job) group_left b_total offset 1h > 1e3',
        ),
        ['a_total', 'b_total'],
      );
      assert.ok(!workerNames.has('python_pool_utilisation'), 'a misspelt name would pass');
    });
  });

  it('has the collector receive OTLP on 4317 (gRPC) and 4318 (HTTP) and send traces through a pipeline', () => {
    const path = commandLine(collector)
      .find((a) => a.startsWith('--config='))
      ?.slice(9);
    assert.ok(path, 'otel-collector gets no --config');
    assert.equal(mountedSource(collector, path), join(ROOT, `${OBS}/otel-collector.yaml`));
    const config = parse(read(`${OBS}/otel-collector.yaml`)) as {
      receivers: Record<string, { protocols?: Record<string, { endpoint?: string }> }>;
      processors?: Record<string, unknown>;
      exporters: Record<string, { endpoint?: string } | null>;
      service: {
        pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }>;
      };
    };
    const otlp = config.receivers.otlp?.protocols;
    // 0.0.0.0: the collector's own default is localhost, which no other container reaches.
    assert.equal(otlp?.grpc?.endpoint, '0.0.0.0:4317');
    assert.equal(otlp?.http?.endpoint, '0.0.0.0:4318');
    const traces = config.service.pipelines.traces;
    assert.ok(traces, 'no traces pipeline');
    assert.ok(traces.receivers.includes('otlp'), 'the traces pipeline does not take OTLP');
    assert.ok(traces.exporters.includes('debug'), 'the traces pipeline does not print to the debug exporter');
    for (const p of traces.processors ?? []) assert.ok(config.processors && p in config.processors, p);
    for (const e of traces.exporters) {
      assert.ok(e in config.exporters, `exporter ${e} is not defined`);
      const endpoint = config.exporters[e]?.endpoint;
      if (!endpoint) continue;
      const host = endpoint.split(':')[0]!;
      assert.ok(sharesNetwork(collector, service(compose, host)), `the collector cannot reach ${host}`);
    }
  });

  it('passes OTEL_EXPORTER_OTLP_ENDPOINT through to every service, each under its own OTEL_SERVICE_NAME', () => {
    const traced = ['gateway', 'python-worker', 'circuit-worker'];
    const names = new Set<string>();
    for (const name of [...traced, 'gateway-debug', 'circuit-worker-debug']) {
      const svc = service(compose, name);
      const env = environment(svc);
      // Compose's own interpolation: the shell's value, or empty (tracing off).
      assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, `\${OTEL_EXPORTER_OTLP_ENDPOINT:-}`, name);
      assert.ok(env.OTEL_SERVICE_NAME, `${name} has no OTEL_SERVICE_NAME`);
      if (traced.includes(name)) names.add(env.OTEL_SERVICE_NAME);
      // OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318 must resolve from the service.
      assert.ok(sharesNetwork(svc, collector), `${name} cannot reach otel-collector`);
    }
    assert.equal(names.size, traced.length, 'two services share an OTEL_SERVICE_NAME');
  });
});

describe('the debug profile', () => {
  const twins = [
    { name: 'gateway-debug', of: 'gateway', port: 9229 },
    { name: 'circuit-worker-debug', of: 'circuit-worker', port: 9230 },
  ];
  const python = service(compose, 'python-worker');

  for (const { name, of, port } of twins) {
    const svc = service(compose, name);
    const original = service(compose, of);

    it(`runs ${name} under that profile only, as ${of} but for its command, ports and networks`, () => {
      assert.deepEqual(svc.profiles, ['debug']);
      for (const key of [
        'build',
        'env_file',
        'environment',
        'volumes',
        'depends_on',
        'healthcheck',
      ] as const) {
        assert.deepEqual(svc[key], original[key], `${name}.${key} drifted from ${of}.${key}`);
      }
    });

    it(`starts ${name} with the inspector on 0.0.0.0:${port} in the container, published on the host's 127.0.0.1 only`, () => {
      const argv = commandLine(svc);
      assert.deepEqual(argv.slice(0, 2), ['node', `--inspect=0.0.0.0:${port}`]);
      assert.ok(existsSync(join(ROOT, argv[2]!)), `${argv[2]} does not exist`);
      assert.ok(rawPorts(svc).includes(`127.0.0.1:${port}:${port}`), rawPorts(svc).join(', '));
      for (const p of rawPorts(svc))
        assert.match(p, /^127\.0\.0\.1:/, `${name} publishes ${p} beyond loopback`);
    });

    it(`keeps ${name} off every network of python-worker, whose code is untrusted`, () => {
      assert.ok(!sharesNetwork(svc, python), `${name} shares a network with python-worker`);
      for (const host of ['nats', 'redis']) {
        assert.ok(sharesNetwork(svc, service(compose, host)), `${name} cannot reach ${host}`);
      }
    });
  }

  it('never runs a python_q consumer under the inspector', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      if (!String(environment(svc).TASKS_QUEUES ?? '').includes('python_q')) continue;
      assert.ok(!commandLine(svc).some((a) => a.startsWith('--inspect')), `${name} runs under the inspector`);
    }
  });
});
