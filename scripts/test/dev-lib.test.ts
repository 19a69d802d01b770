// The dev runner's building blocks against real sockets, streams and (for local-services) a real
// nats-server on a free port with its data in a temp dir. No mocks.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DevError } from '../lib/dev-error.ts';
import { findOnPath, NATS_SERVER, startLocalService } from '../lib/local-services.ts';
import { prefixLines } from '../lib/prefix-lines.ts';
import { prettyLogLines } from '../lib/pretty-logs.ts';
import { isPortOpen, parseHostPort } from '../lib/probe.ts';

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('no TCP address'));
      else resolve(address.port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

// A port that was just free: listen on 0, note the port, close.
async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await close(server);
  return port;
}

describe('parseHostPort(url, defaultPort)', () => {
  it('reads host and port of a nats URL', () => {
    assert.deepEqual(parseHostPort('nats://127.0.0.1:4222', 1), { host: '127.0.0.1', port: 4222 });
  });

  it('ignores credentials and the database of a redis URL', () => {
    assert.deepEqual(parseHostPort('redis://user:secret@cache.internal:6380/3', 6379), {
      host: 'cache.internal',
      port: 6380,
    });
  });

  it('uses the default port when the URL has none', () => {
    assert.deepEqual(parseHostPort('redis://localhost/0', 6379), { host: 'localhost', port: 6379 });
  });

  it('accepts a bare host:port, as nats.js does', () => {
    assert.deepEqual(parseHostPort('nats.local:4223', 4222), { host: 'nats.local', port: 4223 });
  });

  it('strips the brackets of an IPv6 literal', () => {
    assert.deepEqual(parseHostPort('nats://[::1]:4222', 1), { host: '::1', port: 4222 });
  });

  it('rejects a URL without a host with DevError invalid_url', () => {
    assert.throws(
      () => parseHostPort('redis+unix:///run/redis.sock', 6379),
      (err: unknown) => err instanceof DevError && err.code === 'invalid_url',
    );
  });

  it('rejects text that is not a URL with DevError invalid_url', () => {
    assert.throws(
      () => parseHostPort('nats://host:notaport', 4222),
      (err: unknown) => err instanceof DevError && err.code === 'invalid_url',
    );
  });
});

describe('isPortOpen(host, port, timeoutMs)', () => {
  const server = createServer((socket) => socket.destroy());
  let openPort = 0;

  before(async () => {
    openPort = await listen(server);
  });
  after(() => close(server));

  it('is true for a port with a listener', async () => {
    assert.equal(await isPortOpen('127.0.0.1', openPort, 1000), true);
  });

  it('is false for a closed port', async () => {
    assert.equal(await isPortOpen('127.0.0.1', await freePort(), 1000), false);
  });
});

describe('prefixLines(input, tag, output)', () => {
  it('tags every line, including a last line without a newline', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let written = '';
    output.on('data', (chunk: Buffer) => {
      written += chunk.toString('utf8');
    });
    const done = prefixLines(input, '[w]', output);
    input.write('one\r\ntw');
    input.end('o\nthree');
    await done;
    assert.equal(written, '[w] one\n[w] two\n[w] three\n');
  });
});

describe("prettyLogLines(stream): npm start pretty-prints the services' JSON logs", () => {
  const plain = new PassThrough(); // not a TTY: no colours
  const format = prettyLogLines(plain);

  it('shows a pino record as time, level and message, then its fields, each line tagged', async () => {
    const record = {
      level: 30,
      time: Date.UTC(2026, 0, 2, 3, 4, 5),
      pid: 1,
      hostname: 'h',
      service: 'gateway',
      msg: 'task submitted',
      taskId: 't1',
    };
    const shown = format(JSON.stringify(record));
    assert.match(shown[0] ?? '', /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: task submitted$/);
    assert.deepEqual(shown.slice(1), ['    taskId: "t1"']);
    assert.doesNotMatch(shown.join('\n'), /hostname|pid|service/, 'the tag already says which process');
    const input = new PassThrough();
    const output = new PassThrough();
    let written = '';
    output.on('data', (chunk: Buffer) => {
      written += chunk.toString('utf8');
    });
    const done = prefixLines(input, '[g]', output, format);
    input.end(`${JSON.stringify(record)}\n`);
    await done;
    assert.equal(written.split('\n').filter(Boolean).length, 2);
    assert.ok(
      written
        .split('\n')
        .filter(Boolean)
        .every((l) => l.startsWith('[g] ')),
    );
  });

  it('passes through what is not a pino record', () => {
    for (const line of ['plain text', '{"not":"a record"}', '{broken json', '']) {
      assert.deepEqual(format(line), [line]);
    }
  });
});

describe('startLocalService(NATS_SERVER, options)', () => {
  it('runs nats-server with its store in dataDir until stopped', async (t) => {
    const command = findOnPath(NATS_SERVER.binary, process.env.PATH);
    assert.ok(command, 'nats-server must be on PATH for this test (Debian: apt-get install nats-server)');
    const dataDir = await mkdtemp(join(tmpdir(), 'dev-lib-nats-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();

    const service = await startLocalService(NATS_SERVER, {
      command,
      host: '127.0.0.1',
      port,
      dataDir,
      cwd: dataDir,
      env: process.env,
      timeoutMs: 15_000,
    });
    try {
      assert.equal(await isPortOpen('127.0.0.1', port, 1000), true);
      assert.ok(existsSync(join(dataDir, 'jetstream')), 'JetStream store is under dataDir');
    } finally {
      await service.stop(5000);
    }
    assert.equal(await isPortOpen('127.0.0.1', port, 1000), false);
    assert.notEqual(service.child.exitCode ?? service.child.signalCode, null);
  });

  for (const [what, command] of [
    ['exits before opening its port', '/bin/false'],
    ['cannot be spawned', '/nonexistent/nats-server'],
  ]) {
    it(`rejects with DevError dependency_start_failed when the server ${what}`, async (t) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'dev-lib-nats-'));
      t.after(() => rm(dataDir, { recursive: true, force: true }));
      const started = Date.now();
      await assert.rejects(
        startLocalService(NATS_SERVER, {
          command: command!,
          host: '127.0.0.1',
          port: await freePort(),
          dataDir,
          cwd: dataDir,
          env: process.env,
          timeoutMs: 15_000,
        }),
        (err: unknown) => err instanceof DevError && err.code === 'dependency_start_failed',
      );
      assert.ok(Date.now() - started < 5000, 'noticed the failure instead of waiting for the timeout');
    });
  }
});

describe('loadDevConfig worker queues', () => {
  it('runs every queue by default and honours TASKS_QUEUES from the environment', async () => {
    const { loadDevConfig, DEV_WORKER_QUEUES } = await import('../lib/dev-config.ts');
    const empty = mkdtempSync(join(tmpdir(), 'devcfg-'));
    assert.equal(loadDevConfig(empty, {}).worker.queues, DEV_WORKER_QUEUES);
    assert.equal(DEV_WORKER_QUEUES, 'python_q,circuit_q,echo_q');
    assert.equal(loadDevConfig(empty, { TASKS_QUEUES: 'circuit_q' }).worker.queues, 'circuit_q');
  });
});
