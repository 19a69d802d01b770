// `npm run debug:gateway` and `npm run debug:worker` for real, on free ports: the service starts,
// its inspector answers /json/list on 127.0.0.1 only (read from the kernel's socket table), and the
// python sandbox the worker forks has no inspector: no inspector flag or NODE_OPTIONS reaches it,
// it listens on no TCP port, and a SIGUSR1 opens nothing. Linux only (/proc).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gatewayEnv, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { inspectorAddress } from '../debug.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const address = srv.address();
  srv.close();
  await once(srv, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port from the kernel');
  return address.port;
}

interface Started {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string[];
  stop(): Promise<void>;
}

/** `npm run <script> -- <args>`. */
function npmRun(script: string, args: string[], env: Record<string, string>): Started {
  return startGroup('npm', ['run', '-s', script, '--', ...args], env);
}

/** A command in its own process group, so that stop() reaches its children (npm's script, the sandbox). */
function startGroup(command: string, args: string[], env: Record<string, string>): Started {
  const proc = spawn(command, args, {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ msg: line });
    }
  });
  createInterface({ input: proc.stderr! }).on('line', (line) => stderr.push(line));
  const exited = once(proc, 'exit');
  return {
    proc,
    lines,
    stderr,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      process.kill(-proc.pid!, 'SIGTERM');
      const timer = setTimeout(() => process.kill(-proc.pid!, 'SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };
}

interface Listener {
  address: string;
  port: number;
  inode: string;
}

/** TCP sockets in LISTEN state, from /proc/net/tcp and tcp6 (addresses as the kernel writes them). */
function listeners(): Listener[] {
  const out: Listener[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A') continue;
      const [address, port] = f[1]!.split(':') as [string, string];
      out.push({ address, port: Number.parseInt(port, 16), inode: f[9]! });
    }
  }
  return out;
}

/** Inodes of the sockets a process holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

const LOOPBACK_V4 = '0100007F';

async function inspectorTargets(port: number): Promise<{ type: string; webSocketDebuggerUrl: string }[]> {
  const res = await fetch(`http://127.0.0.1:${port}/json/list`);
  return (await res.json()) as { type: string; webSocketDebuggerUrl: string }[];
}

async function assertInspectorOnLoopback(port: number): Promise<void> {
  const targets = await waitFor(
    async () => {
      const t = await inspectorTargets(port).catch(() => []);
      return t.length > 0 ? t : null;
    },
    20_000,
    `the inspector on ${port}`,
    100,
  );
  assert.equal(targets[0]?.type, 'node');
  assert.match(targets[0]?.webSocketDebuggerUrl ?? '', new RegExp(`^ws://127\\.0\\.0\\.1:${port}/`));
  const bound = listeners().filter((l) => l.port === port);
  assert.deepEqual(
    bound.map((l) => l.address),
    [LOOPBACK_V4],
    'the inspector listens on 127.0.0.1 and nowhere else',
  );
}

describe('inspectorAddress', () => {
  it('defaults to 127.0.0.1:9229 for the gateway and 127.0.0.1:9230 for the worker', () => {
    assert.deepEqual(inspectorAddress('gateway', {}, {}), { port: 9229, host: '127.0.0.1' });
    assert.deepEqual(inspectorAddress('worker', {}, {}), { port: 9230, host: '127.0.0.1' });
  });

  it('takes __PORT and __HOST from the env, the command line over both, and rejects nonsense', () => {
    const env = { TASKS_DEBUG__PORT: '9555', NEUROAGENT_HTTP__PORT: '1', TASKS_QUEUES: 'x' };
    assert.deepEqual(inspectorAddress('worker', env, {}), { port: 9555, host: '127.0.0.1' });
    assert.deepEqual(inspectorAddress('worker', env, { port: '9666', host: '0.0.0.0' }), {
      port: 9666,
      host: '0.0.0.0',
    });
    assert.throws(() => inspectorAddress('gateway', { NEUROAGENT_DEBUG__PORT: '70000' }, {}));
    assert.throws(() => inspectorAddress('gateway', { NEUROAGENT_DEBUG__PROT: '1' }, {}), /unknown/);
  });
});

describe('.vscode/launch.json', () => {
  const launch = JSON.parse(readFileSync(`${ROOT}.vscode/launch.json`, 'utf8')) as {
    configurations: Record<string, unknown>[];
  };
  const byName = (name: string) => {
    const c = launch.configurations.find((x) => x.name === name);
    assert.ok(c, `no configuration "${name}"`);
    return c;
  };
  const scripts = (
    JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string> }
  ).scripts;

  it('attaches to each debug script on its default inspector port, on loopback', () => {
    for (const target of ['gateway', 'worker'] as const) {
      const c = byName(`Attach to ${target}`);
      assert.equal(c.request, 'attach');
      assert.equal(c.address, '127.0.0.1');
      assert.equal(c.port, inspectorAddress(target, {}, {}).port);
      assert.match(scripts[`debug:${target}`] ?? '', new RegExp(`scripts/debug\\.ts ${target}$`));
    }
  });

  it('launches each service as its start script does, without attaching to the python sandbox', () => {
    for (const target of ['gateway', 'worker'] as const) {
      const c = byName(`Launch ${target}`);
      const start = scripts[`start:${target}`]!.split(' ');
      assert.deepEqual(c.runtimeArgs, start.slice(1, -1), `the env file flags of start:${target}`);
      assert.equal(c.program, `\${workspaceFolder}/${start.at(-1)}`);
      assert.equal(c.autoAttachChildProcesses, false);
    }
  });
});

describe('npm run debug:gateway', () => {
  const ns = testNamespace('debuggw');
  let gateway: Started | undefined;
  after(() => gateway?.stop());

  it('starts the gateway with its inspector answering on 127.0.0.1 only', async () => {
    const port = await freePort();
    gateway = npmRun('debug:gateway', ['--port', String(port)], {
      ...baseEnv(),
      ...gatewayEnv(ns),
      NEUROAGENT_HTTP__PORT: '0',
      NEUROAGENT_LOG__LEVEL: 'info',
    });
    await assertInspectorOnLoopback(port);
    const listening = await waitFor(
      async () => gateway!.lines.find((l) => l.msg === 'gateway listening') ?? null,
      30_000,
      `gateway listening; stderr: ${gateway.stderr.join('\n')}`,
      100,
    );
    assert.equal((await fetch(`${String(listening.url)}/healthz`)).status, 200);
    assert.ok(gateway.stderr.some((l) => l.includes(`Debugger listening on ws://127.0.0.1:${port}/`)));
  });
});

/** A worker consuming python_q; an inspector option in NODE_OPTIONS, which a child that inherited the env would apply too. */
function pythonWorkerEnv(ns: ReturnType<typeof testNamespace>): Record<string, string> {
  return {
    ...baseEnv(),
    ...workerEnv(ns, { TASKS_QUEUES: 'python_q', TASKS_PYTHON__THREADS: '1' }),
    NODE_OPTIONS: '--inspect-publish-uid=stderr,http',
  };
}

/** The worker's inspector is on `port`; its python sandbox has none, not even after a SIGUSR1. */
async function assertSandboxWithoutInspector(worker: Started, port: number): Promise<void> {
  await assertInspectorOnLoopback(port);
  const ready = await waitFor(
    async () => worker.lines.find((l) => l.msg === 'python sandbox ready') ?? null,
    120_000,
    `the python sandbox; stderr: ${worker.stderr.join('\n')}`,
    100,
  );
  await waitFor(
    async () => worker.lines.find((l) => l.msg === 'worker ready') ?? null,
    60_000,
    'worker ready',
    100,
  );
  const sandbox = Number(ready.pid);
  const parent = Number(readFileSync(`/proc/${sandbox}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);

  // The worker holds the inspector's socket (so the checks below can see one)...
  const inspector = listeners().find((l) => l.port === port)!;
  assert.ok(socketInodes(parent).has(inspector.inode), 'the worker holds its inspector socket');
  // ...and the sandbox was given no inspector flag and no environment (NODE_OPTIONS included).
  const argv = readFileSync(`/proc/${sandbox}/cmdline`, 'utf8').split('\0');
  assert.ok(argv.includes('--permission'), argv.join(' '));
  assert.ok(!argv.some((a) => a.startsWith('--inspect') || a === '--allow-inspector'), argv.join(' '));
  const environ = readFileSync(`/proc/${sandbox}/environ`, 'utf8').split('\0').filter(Boolean);
  // Only what fork() itself sets up for the IPC channel.
  assert.deepEqual(
    environ.map((v) => v.split('=')[0]).sort(),
    ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE'],
    environ.join(' '),
  );

  const listening = (pid: number) => {
    const held = socketInodes(pid);
    return listeners().filter((l) => held.has(l.inode));
  };
  assert.deepEqual(listening(sandbox), [], 'the sandbox listens on a TCP port');
  const debuggerLines = () => worker.stderr.filter((l) => l.includes('Debugger listening')).length;
  assert.equal(debuggerLines(), 1, "the worker's own inspector announced itself");
  // SIGUSR1 opens the inspector of a plain Node process; the sandbox ignores it and lives on.
  process.kill(sandbox, 'SIGUSR1');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  process.kill(sandbox, 0);
  assert.deepEqual(listening(sandbox), [], 'SIGUSR1 opened a port in the sandbox');
  assert.equal(debuggerLines(), 1, 'the sandbox announced an inspector');
  assert.ok(!worker.lines.some((l) => l.msg === 'python sandbox exited: restarting'));
}

describe('npm run debug:worker', () => {
  const ns = testNamespace('debugwk');
  let worker: Started | undefined;
  after(() => worker?.stop());

  it('starts the worker with its inspector on 127.0.0.1; the python sandbox has none', async () => {
    const port = await freePort();
    worker = npmRun('debug:worker', ['--port', String(port)], pythonWorkerEnv(ns));
    await assertSandboxWithoutInspector(worker, port);
  });
});

describe('a worker started under node --inspect (the compose debug profile, a VS Code launch)', () => {
  const ns = testNamespace('inspectwk');
  let worker: Started | undefined;
  after(() => worker?.stop());

  it('keeps --inspect out of the python sandbox it forks', async () => {
    const port = await freePort();
    const args = [
      `--inspect=127.0.0.1:${port}`,
      '--env-file-if-exists=.env.tasks',
      'services/worker/src/main.ts',
    ];
    worker = startGroup(process.execPath, args, pythonWorkerEnv(ns));
    await assertSandboxWithoutInspector(worker, port);
  });
});
