// Test support: a real S3-compatible server (s3rver, a root devDependency) in a child process on
// 127.0.0.1, an ephemeral port and a temporary data folder, so storage tests need nothing started
// by hand. A child process rather than in-process: s3rver's logger installs process-wide
// exception handlers, and a test of "the store is down" needs a server it can really stop.
// Imported by tests only, never by service code.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { loadConfig } from './config.ts';
import { StorageSettings } from './storage.ts';

// s3rver accepts only its built-in account. It checks a pre-signed URL's expiry but, unlike S3,
// not its SigV4 signature.
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';

export interface TestS3 {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  dataDir: string;
  /**
   * `<PREFIX>_STORAGE__*` variables for this server, for `loadConfig` or a service's env. The
   * bucket is created at boot (`CREATE_BUCKET=true`) and checksums are sent only when required.
   */
  env(prefix: string, extra?: { bucket?: string } & Record<string, string>): Record<string, string>;
  /** The same values parsed by `loadConfig`, as a service's main.ts would get them. */
  settings(extra?: { bucket?: string } & Record<string, string>): StorageSettings;
  /** Stops the server (it refuses connections afterwards) and removes its data folder. */
  stop(): Promise<void>;
}

export interface StartTestS3Options {
  /** How long to wait for the server to listen. */
  timeoutMs?: number;
}

export async function startTestS3(options: StartTestS3Options = {}): Promise<TestS3> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const bin = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'neuroagent-s3-'));
  const child = spawn(
    process.execPath,
    [bin, '--directory', dataDir, '--address', '127.0.0.1', '--port', '0', '--silent', '--no-vhost-buckets'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // MUST NOT outlive the test process, even when a test forgets stop().
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let port: number;
  try {
    port = await waitForListening(child, timeoutMs);
  } catch (err) {
    process.off('exit', killOnExit);
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;

  const env: TestS3['env'] = (prefix, extra = {}) => {
    const { bucket = 'neuroagent-test', ...rest } = extra;
    const p = `${prefix}_STORAGE__`;
    const vars: Record<string, string> = {
      [`${p}ENDPOINT_URL`]: endpoint,
      [`${p}REGION`]: 'us-east-1',
      [`${p}ACCESS_KEY`]: ACCESS_KEY,
      [`${p}SECRET_KEY`]: SECRET_KEY,
      [`${p}BUCKET`]: bucket,
      [`${p}FORCE_PATH_STYLE`]: 'true',
      [`${p}CHECKSUM_WHEN_REQUIRED`]: 'true',
      [`${p}CREATE_BUCKET`]: 'true',
    };
    for (const [k, v] of Object.entries(rest)) vars[`${p}${k.toUpperCase()}`] = v;
    return vars;
  };

  let stopped: Promise<void> | null = null;
  return {
    endpoint,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    region: 'us-east-1',
    dataDir,
    env,
    settings: (extra = {}) =>
      loadConfig(Type.Object({ storage: StorageSettings }), 'TEST', env('TEST', extra)).storage,
    stop() {
      stopped ??= (async () => {
        process.off('exit', killOnExit);
        await stopChild(child);
        rmSync(dataDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

function waitForListening(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(
      () => finish(new Error(`s3rver did not listen within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onExit = (code: number | null, signal: string | null): void =>
      finish(new Error(`s3rver exited (${signal ?? code}) before listening: ${stderr.trim().slice(-500)}`));
    const onError = (err: Error): void => finish(err);
    const finish = (result: number | Error): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      child.stdout?.removeAllListeners('data');
      // Keep draining both pipes: a child blocked on a full pipe stops answering requests.
      child.stdout?.resume();
      child.stderr?.removeAllListeners('data');
      child.stderr?.resume();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const m = /listening on [^\s:]+:(\d+)/.exec(stdout);
      if (m?.[1]) finish(Number(m[1]));
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
