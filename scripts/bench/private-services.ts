// The bench's own nats-server (JetStream) and redis-server: free ports, temp dirs, no Redis
// persistence. Private so the CPU they use is the bench's alone (the shared servers serve other
// people too), and so nothing here touches a running deployment.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const HOST = '127.0.0.1';

export interface PrivateService {
  name: string;
  url: string;
  pid: number;
  /** Last lines the server printed (for error messages). */
  output: string[];
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const address = srv.address();
  srv.close();
  await once(srv, 'close');
  if (address === null || typeof address === 'string') throw new Error('no free port from the kernel');
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

async function startServer(
  name: string,
  command: string,
  args: (port: number, dir: string) => string[],
  url: (port: number) => string,
): Promise<PrivateService> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), `neuroagent-bench-${name}-`));
  const output: string[] = [];
  const child: ChildProcess = spawn(command, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (b: Buffer) => {
    output.push(b.toString());
    if (output.length > 50) output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const gone = () => spawnError !== undefined || child.exitCode !== null || child.signalCode !== null;
  const close = async () => {
    if (!gone()) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await portOpen(port))) {
    if (gone() || Date.now() > deadline) {
      await close();
      throw new Error(`${command} did not start on port ${port}: ${spawnError?.message ?? output.join('')}`);
    }
    await sleep(50);
  }
  if (child.pid === undefined) throw new Error(`${command} has no pid`);
  return { name, url: url(port), pid: child.pid, output, close };
}

export function startNats(): Promise<PrivateService> {
  return startServer(
    'nats',
    'nats-server',
    (port, dir) => ['-a', HOST, '-p', String(port), '-js', '-sd', dir],
    (port) => `nats://${HOST}:${port}`,
  );
}

export function startRedis(): Promise<PrivateService> {
  return startServer(
    'redis',
    'redis-server',
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
      // 10,000 long-poll clients plus the bench's own connections.
      '--maxclients',
      '20000',
    ],
    (port) => `redis://${HOST}:${port}/0`,
  );
}
