// Checks docker-compose.yml, the .env files and the Dockerfiles against the real config schemas, so
// a renamed variable, a moved env_file or a Dockerfile that drags Pyodide into the gateway fails here
// instead of at `docker compose up`. Reads files only: no Docker daemon is needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { GATEWAY_ENV_PREFIX, GatewayConfig, loadGatewayConfig } from '../services/gateway/src/config.ts';
import { describeConfig } from '../services/platform/src/config.ts';
import { loadWorkerConfig, WORKER_ENV_PREFIX, WorkerConfig } from '../services/worker/src/config.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

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
}
export interface ComposeFile {
  version?: unknown;
  services: Record<string, ComposeService>;
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

export function copies(instructions: Instruction[]): { sources: string[]; dest: string }[] {
  return instructions
    .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    .map((i) => {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
    });
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
const gatewayDockerfile = dockerInstructions(read('infra/gateway.Dockerfile'));
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

    it(`${c.name} sets only ${c.prefix}_* variables its config schema declares`, () => {
      const keys = Object.keys(environment(service(compose, c.name)));
      assert.ok(keys.length > 0);
      assert.deepEqual(undeclaredVariables(keys, c.vars, c.prefix), []);
      assert.deepEqual(
        keys.filter((k) => !k.startsWith(`${c.prefix}_`)),
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

  it('exposes the gateway port', () => {
    const exposed = gatewayDockerfile.filter((i) => i.op === 'EXPOSE').map((i) => i.args);
    assert.deepEqual(exposed, [gatewayVars.find((v) => v.variable === 'NEUROAGENT_HTTP__PORT')?.default]);
  });
});
