// Private nats-server and redis-server processes for the reliability tests and `npm run bench`:
// each on a free port of
// its own with its own temp folder, so a test can kill and restart it without touching the shared
// servers. restart() brings the server back on the SAME port (and, for NATS, the same JetStream
// store dir), as an operator's restart would. Redis runs without persistence (`--save ''`,
// `--appendonly no`): a restart loses every key, which is what the Redis test is about.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';

const HOST = '127.0.0.1';

export interface PrivateServer {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Pid of the running server process, or null while it is stopped. */
  pid(): number | null;
  /** Starts the server (on the same port and dir as before) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing until resume(). */
  pause(): void;
  /** SIGCONT after pause(): the server reads what clients sent meanwhile and carries on. */
  resume(): void;
  /** stop(signal), wait `downMs`, start(). */
  restart(signal: NodeJS.Signals, downMs: number): Promise<void>;
  /** Stops the server if running and deletes its folder. */
  close(): Promise<void>;
  /** Everything the server printed (for failure messages). */
  output: string[];
}

/** A TCP port nobody listens on right now (the kernel's choice). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const address = srv.address();
  srv.close();
  await once(srv, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port from the kernel');
  return address.port;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    const settle = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(1000, () => settle(false));
    socket.once('connect', () => settle(true));
    socket.once('error', () => settle(false));
  });
}

/** Any server binary on a free loopback port with a temp folder of its own (see the header). */
export async function privateServer(
  name: string,
  command: string,
  scheme: string,
  args: (port: number, dir: string) => string[],
  urlSuffix = '',
  /** Runs once, before the first start: e.g. writes a config file into the folder. */
  prepare?: (dir: string) => Promise<void>,
): Promise<PrivateServer> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), `neuroagent-${name}-`));
  await prepare?.(dir);
  const output: string[] = [];
  let child: ChildProcess | null = null;

  const running = () => child !== null && child.exitCode === null && child.signalCode === null;

  async function start(): Promise<void> {
    if (running()) throw new Error(`${name} is already running`);
    const proc = spawn(command, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const keep = (b: Buffer) => {
      output.push(b.toString());
      if (output.length > 200) output.shift();
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`${name} exited at start on port ${port}: ${output.join('')}`);
      }
      if (await portOpen(port)) return;
      // A port just released by a killed server can take a moment to be bindable again.
      if (Date.now() > deadline) throw new Error(`${name} did not listen on ${port}: ${output.join('')}`);
      await sleep(50);
    }
  }

  async function stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = child;
    if (proc === null || !running()) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  await start();
  return {
    name,
    port,
    url: `${scheme}://${HOST}:${port}${urlSuffix}`,
    dir,
    output,
    pid: () => (running() ? (child?.pid ?? null) : null),
    start,
    stop,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async restart(signal, downMs) {
      await stop(signal);
      await sleep(downMs);
      await start();
    },
    async close() {
      await stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** nats-server with JetStream, its file store in a temp folder kept across restarts. */
export function startPrivateNats(): Promise<PrivateServer> {
  return privateServer('nats', 'nats-server', 'nats', (port, dir) => [
    '-a',
    HOST,
    '-p',
    String(port),
    '-js',
    '-sd',
    dir,
  ]);
}

export interface PrivateNatsCluster {
  /** The nodes, in order n1, n2, n3, …; each keeps its ports and store dir across restarts. */
  readonly nodes: PrivateServer[];
  /** Every node's client URL, comma-separated, as NEUROAGENT_NATS__URL / TASKS_NATS__URL take them. */
  readonly urls: string;
  /** The node whose server_name is `name` (as stream info reports leaders and replicas). */
  node(name: string): PrivateServer;
  close(): Promise<void>;
}

/**
 * A JetStream cluster of `size` nats-server processes on loopback: each its own client port,
 * cluster port, server_name and store folder, every node routing to every other. Resolves once
 * JetStream has a meta leader, so streams can be created at once.
 */
export async function startPrivateNatsCluster(size = 3): Promise<PrivateNatsCluster> {
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((p) => `nats://${HOST}:${p}`).join(',');
  const nodes: PrivateServer[] = [];
  const names: string[] = [];
  try {
    for (const [i, clusterPort] of clusterPorts.entries()) {
      const name = `n${i + 1}`;
      names.push(name);
      nodes.push(
        await privateServer(`nats-${name}`, 'nats-server', 'nats', (port, dir) => [
          '-a',
          HOST,
          '-p',
          String(port),
          '--server_name',
          name,
          '--cluster_name',
          'neuroagent-test',
          '--cluster',
          `nats://${HOST}:${clusterPort}`,
          '--routes',
          routes,
          '-js',
          '-sd',
          dir,
        ]),
      );
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.close()));
    throw err;
  }
  const cluster: PrivateNatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    node(name) {
      const at = names.indexOf(name);
      const found = nodes[at];
      if (!found) throw new Error(`no node ${name} in this cluster (${names.join(', ')})`);
      return found;
    },
    async close() {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
  await waitForMetaLeader(cluster.urls);
  return cluster;
}

async function waitForMetaLeader(urls: string): Promise<void> {
  const nc = await natsConnect({ servers: urls.split(',') });
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`the cluster elected no JetStream meta leader: ${String(err)}`);
        await sleep(250);
      }
    }
  } finally {
    await nc.close();
  }
}

/** redis-server without persistence: a restart starts empty. */
export function startPrivateRedis(): Promise<PrivateServer> {
  return privateServer(
    'redis',
    'redis-server',
    'redis',
    (port, dir) => [
      '--bind',
      HOST,
      '--port',
      String(port),
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      // The benchmark holds 10,000 long-poll clients plus its own connections.
      '--maxclients',
      '20000',
    ],
    '/0',
  );
}
