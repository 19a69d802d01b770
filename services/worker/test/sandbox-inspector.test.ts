// The python sandbox never has a Node inspector, which would run any code it is sent outside every
// guard of the threads: a process started with exactly the sandbox's flags, and asked for an
// inspector every way Node offers (--inspect, NODE_OPTIONS, inspector.open(), SIGUSR1), opens
// none. The real sandbox forked by a worker under the inspector is checked in scripts/test/debug.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from '../src/config.ts';
import { sandboxNodeFlags } from '../src/python/sandbox-client.ts';
import { buildSandboxConfig } from '../src/python/sandbox-config.ts';

const run = promisify(execFile);

/** Port the kernel hands out now; nothing listens on it once this resolves. */
async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => srv.once('listening', resolve));
  const address = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

// Inside the confined process: every way to an inspector, and what became of it.
const PROBE = `
const inspector = require('node:inspector');
const out = { atStart: inspector.url() ?? null };
try { inspector.open(0, '127.0.0.1'); out.open = inspector.url() ?? 'no url'; }
catch (e) { out.open = 'error:' + e.code; }
process.kill(process.pid, 'SIGUSR1');
setTimeout(() => {
  out.afterSignal = inspector.url() ?? null;
  process.stdout.write(JSON.stringify(out));
}, 500);`;

describe('sandbox inspector', () => {
  it('stays off with the sandbox flags, whether asked by flag, NODE_OPTIONS, API or SIGUSR1', async () => {
    const config = loadWorkerConfig({});
    const flags = sandboxNodeFlags(await buildSandboxConfig(config, createLogger('test', 'silent')));
    assert.ok(!flags.some((f) => f.startsWith('--inspect') || f === '--allow-inspector'), flags.join(' '));
    const [flagPort, envPort] = [await freePort(), await freePort()];
    const { stdout, stderr } = await run(
      process.execPath,
      [...flags, `--inspect=127.0.0.1:${flagPort}`, '-e', PROBE],
      { env: { NODE_OPTIONS: `--inspect=127.0.0.1:${envPort}` } },
    );
    assert.deepEqual(JSON.parse(stdout), {
      atStart: null,
      open: 'error:ERR_ACCESS_DENIED',
      afterSignal: null,
    });
    assert.doesNotMatch(stderr, /Debugger listening/);
    assert.ok(await refused(flagPort), `something listens on ${flagPort}`);
    assert.ok(await refused(envPort), `something listens on ${envPort}`);
  });

  it('the probe sees an inspector where one is allowed (so the check above can fail)', async () => {
    const { stdout } = await run(process.execPath, ['-e', PROBE], { env: {} });
    const out = JSON.parse(stdout) as { open: string };
    assert.match(out.open, /^ws:\/\/127\.0\.0\.1:\d+\//);
  });
});
