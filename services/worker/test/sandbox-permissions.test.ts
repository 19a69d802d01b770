// The sandbox process's read allow-list holds only what it loads. A Node process started with
// exactly the sandbox's flags tries JS-level reads of the project's secrets (the dev JWT secret,
// the .env files, the ledger database) and of the other packages, which must all be denied, while
// the files the sandbox does load stay readable; and the real sandbox still starts and runs code.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from '../src/config.ts';
import { sandboxNodeFlags } from '../src/python/sandbox-client.ts';
import { buildSandboxConfig } from '../src/python/sandbox-config.ts';
import { BUNDLED_LOCK_FILE, PYTHON_DIR, SANDBOX_PACKAGE_DIRS } from '../src/python/sandbox-paths.ts';
import { startSandbox } from './support.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROBE_SECRET = `sandbox-permission-probe-${process.pid}`;
const PROBE_DIR = join(ROOT, '.data');
const PROBE_FILE = join(PROBE_DIR, `permission-probe-${process.pid}`);

/** Reads each path with node:fs inside a process confined by `flags`; reports what happened. */
async function readEach(flags: string[], paths: string[]): Promise<Record<string, string>> {
  const script = `
    const fs = require('node:fs');
    const out = {};
    for (const p of JSON.parse(process.argv[1])) {
      try { out[p] = 'read:' + fs.readFileSync(p, 'utf8').slice(0, 200); }
      catch (e) { out[p] = 'error:' + e.code; }
    }
    process.stdout.write(JSON.stringify(out));`;
  const { stdout } = await run(process.execPath, [...flags, '-e', script, JSON.stringify(paths)], {
    cwd: ROOT,
    env: {},
  });
  return JSON.parse(stdout) as Record<string, string>;
}

describe('sandbox process read allow-list', () => {
  let flags: string[];

  before(async () => {
    mkdirSync(PROBE_DIR, { recursive: true });
    writeFileSync(PROBE_FILE, PROBE_SECRET);
    const config = loadWorkerConfig({});
    flags = sandboxNodeFlags(await buildSandboxConfig(config, createLogger('test', 'silent')));
  });
  after(() => rmSync(PROBE_FILE, { force: true }));

  it('grants node_modules package by package, never the project root or node_modules whole', () => {
    const reads = flags.filter((f) => f.startsWith('--allow-fs-read=')).map((f) => f.slice(16));
    for (const dir of reads) {
      assert.notEqual(dir.replace(/\/$/, ''), ROOT.replace(/\/$/, ''), 'the project root');
      assert.doesNotMatch(dir, /node_modules\/?$/, `${dir} is a whole node_modules folder`);
    }
    assert.deepEqual(
      SANDBOX_PACKAGE_DIRS.map((d) => d.split('/').at(-1)),
      ['piscina', 'pyodide', 'ws'],
    );
  });

  it('denies JS-level reads of the secrets and other packages, allows what the sandbox loads', async () => {
    const denied = [
      PROBE_FILE,
      join(ROOT, '.data', 'dev-jwt-secret'),
      join(ROOT, '.data', 'neuroagent.sqlite'),
      join(ROOT, '.env.app'),
      join(ROOT, '.env.tasks'),
      join(ROOT, 'package.json'),
      join(ROOT, 'services', 'gateway', 'src', 'auth', 'settings.ts'),
      join(ROOT, 'node_modules', 'openai', 'package.json'),
      join(ROOT, 'node_modules', '@aws-sdk', 'client-s3', 'package.json'),
    ];
    const allowed = [BUNDLED_LOCK_FILE, join(PYTHON_DIR, 'runner.py')];
    const got = await readEach(flags, [...denied, ...allowed]);
    for (const p of denied) {
      assert.equal(got[p], 'error:ERR_ACCESS_DENIED', `${p}: ${got[p]}`);
      assert.ok(!String(got[p]).includes(PROBE_SECRET));
    }
    for (const p of allowed) assert.match(String(got[p]), /^read:/, `${p}: ${got[p]}`);
  });

  it('still starts the real sandbox, which runs code under these flags', async () => {
    const sandbox = await startSandbox({ TASKS_PYTHON__THREADS: '1' });
    try {
      const r = await sandbox.run('import json\njson.dumps({"a": 6 * 7})');
      assert.equal(r.status, 'success', JSON.stringify(r));
      assert.equal(r.status === 'success' && r.return_value, '{"a": 42}');
    } finally {
      await sandbox.close();
    }
  });
});
