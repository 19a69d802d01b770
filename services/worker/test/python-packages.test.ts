// Packages in the sandbox, offline: a package source made of real wheels written by the test,
// served from a directory or over HTTP on loopback, auto-installed from imports, preloaded into
// the snapshot, and clear install-errors when a package cannot be had.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { type FixturePackage, serveDirectory, writePackageSource } from './package-fixtures.ts';
import { startSandbox, type TestSandbox } from './support.ts';

const HELLO: FixturePackage = {
  name: 'hello-pkg',
  module: 'hello_pkg',
  source: 'def greet():\n    return "hello"\n',
};
const SHOUT: FixturePackage = {
  name: 'shout-pkg',
  module: 'shout_pkg',
  source: 'import hello_pkg\n\ndef shout():\n    return hello_pkg.greet().upper()\n',
  depends: ['hello-pkg'],
};

function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `${label}-`));
}

function errorMessage(r: PythonResult): string {
  assert.equal(r.status, 'error', JSON.stringify(r));
  const e = r.status === 'error' ? r.error : null;
  return typeof e === 'object' && e !== null ? e.message : String(e);
}

describe('python packages (offline, real wheels)', () => {
  const sandboxes: TestSandbox[] = [];
  const dirs: string[] = [];
  const start = async (env: Record<string, string>) => {
    const snapshots = tempDir('snapshots');
    dirs.push(snapshots);
    const s = await startSandbox({
      TASKS_PYTHON__THREADS: '1',
      TASKS_PYTHON__SNAPSHOT_DIR: snapshots,
      ...env,
    });
    sandboxes.push(s);
    return s;
  };
  after(async () => {
    for (const s of sandboxes) await s.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('without a package source, names a missing Pyodide package at once (install-error)', async () => {
    const sandbox = await start({});
    const t0 = performance.now();
    const r = await sandbox.run('import numpy as np\nnp.arange(3)');
    const ms = performance.now() - t0;
    assert.equal(r.status === 'error' && r.error_type, 'install-error', JSON.stringify(r));
    assert.match(
      errorMessage(r),
      /numpy not available: no package source is configured \(TASKS_PYTHON__PACKAGES_URL\)/,
    );
    assert.ok(ms < 1000, `answered in ${ms} ms`);
    // A module no package provides is the script's own error.
    const unknown = await sandbox.run('import no_such_module_xyz');
    assert.equal(unknown.status === 'error' && unknown.error_type, 'python-error');
  });

  it('installs packages (and their dependencies) from a directory source, from the imports', async () => {
    const source = tempDir('pkgs');
    dirs.push(source);
    writePackageSource(source, [HELLO, SHOUT]);
    const sandbox = await start({ TASKS_PYTHON__PACKAGES_URL: source });
    const r = await sandbox.run('import shout_pkg\nshout_pkg.shout()');
    assert.deepEqual(r, { status: 'success', output: [], stderr: [], return_value: 'HELLO' });
    // A package installed at run time is more than a reset undoes: the interpreter is replaced.
    assert.equal(sandbox.raw.isolationStats().fallbacks.package_installed, 1);
    const after = await sandbox.run('import sys\n["hello_pkg" in sys.modules, "shout_pkg" in sys.modules]');
    assert.deepEqual(after.status === 'success' && after.return_value, [false, false]);
    // Each run has a pristine interpreter, so the next one installs again, from the same source.
    assert.equal((await sandbox.run('import hello_pkg\nhello_pkg.greet()')).status, 'success');
    assert.equal(sandbox.raw.isolationStats().fallbacks.package_installed, 2);
  });

  it('a package load still in flight at the install time limit takes the fallback', async () => {
    const source = tempDir('pkgs');
    dirs.push(source);
    writePackageSource(source, [HELLO]);
    const cache = tempDir('pkg-cache');
    dirs.push(cache);
    const http = await serveDirectory(source, (path) => path.endsWith('.whl'));
    try {
      const sandbox = await start({
        TASKS_PYTHON__PACKAGES_URL: http.url,
        TASKS_PYTHON__PACKAGE_CACHE_DIR: cache,
        TASKS_PYTHON__INSTALL_TIMEOUT_S: '0.5',
      });
      const r = await sandbox.run('import hello_pkg');
      assert.equal(r.status === 'error' && r.error_type, 'install-error', JSON.stringify(r));
      assert.match(errorMessage(r), /took longer than 500 ms/);
      assert.equal(sandbox.raw.isolationStats().fallbacks.package_load, 1);
      const next = await sandbox.run('import sys\n"hello_pkg" in sys.modules');
      assert.deepEqual(next.status === 'success' && next.return_value, false);
    } finally {
      http.server.closeAllConnections();
      http.server.close();
    }
  });

  it('fails with install-error naming the package when the source lacks its file', async () => {
    const source = tempDir('pkgs');
    dirs.push(source);
    writePackageSource(source, [HELLO]);
    for (const f of readdirSync(source)) if (f.endsWith('.whl')) rmSync(join(source, f));
    const sandbox = await start({ TASKS_PYTHON__PACKAGES_URL: source });
    const t0 = performance.now();
    const r = await sandbox.run('import hello_pkg');
    assert.equal(r.status === 'error' && r.error_type, 'install-error', JSON.stringify(r));
    assert.match(errorMessage(r), /could not install hello-pkg/);
    assert.ok(performance.now() - t0 < 1000);
  });

  it('preloads packages into the snapshot: imported before the script runs, no source needed afterwards', async () => {
    const source = tempDir('pkgs');
    dirs.push(source);
    writePackageSource(source, [HELLO]);
    const sandbox = await start({ TASKS_PYTHON__PACKAGES_URL: source, TASKS_PYTHON__PRELOAD: 'hello-pkg' });
    for (const f of readdirSync(source)) if (f.endsWith('.whl')) rmSync(join(source, f));
    const r = await sandbox.run(
      'import sys\nloaded = "hello_pkg" in sys.modules\nimport hello_pkg\n[loaded, hello_pkg.greet()]',
    );
    assert.deepEqual(r, { status: 'success', output: [], stderr: [], return_value: [true, 'hello'] });
    // A package in the snapshot stays on the reset path.
    const again = await sandbox.run('import hello_pkg\nhello_pkg.greet()');
    assert.equal(again.status, 'success', JSON.stringify(again));
    const stats = sandbox.raw.isolationStats();
    assert.equal(stats.prepared.reset, 1, JSON.stringify(stats));
    assert.equal(
      Object.values(stats.fallbacks).reduce((a, b) => a + b, 0),
      0,
      JSON.stringify(stats),
    );
  });

  it('installs from an http(s) source and caches the download', async () => {
    const source = tempDir('pkgs');
    const cache = tempDir('pkg-cache');
    dirs.push(source, cache);
    writePackageSource(source, [HELLO]);
    const http = await serveDirectory(source);
    try {
      const sandbox = await start({
        TASKS_PYTHON__PACKAGES_URL: http.url,
        TASKS_PYTHON__PACKAGE_CACHE_DIR: cache,
      });
      const r = await sandbox.run('import hello_pkg\nhello_pkg.greet()');
      assert.deepEqual(r, { status: 'success', output: [], stderr: [], return_value: 'hello' });
      assert.ok(http.requests.includes('/pyodide-lock.json'));
      assert.ok(http.requests.includes('/hello_pkg-1.0-py3-none-any.whl'));
      assert.ok(existsSync(join(cache, 'hello_pkg-1.0-py3-none-any.whl')), 'the wheel was cached');
    } finally {
      http.server.close();
    }
  });

  it('refuses a preload list without a package source at boot', async () => {
    await assert.rejects(
      start({ TASKS_PYTHON__PRELOAD: 'numpy' }),
      /TASKS_PYTHON__PRELOAD needs a package source/,
    );
  });

  // Real numpy/plotly/matplotlib wheels cannot be downloaded on this machine. Point
  // TEST_PYODIDE_PACKAGES_URL at a directory made by scripts/fetch-pyodide-packages.ts to run these.
  const realPackages = process.env.TEST_PYODIDE_PACKAGES_URL ?? '';
  const noRealPackages =
    realPackages === '' &&
    'needs real Pyodide wheels, which cannot be downloaded here: set TEST_PYODIDE_PACKAGES_URL to a package source (scripts/fetch-pyodide-packages.ts)';

  it('captures matplotlib figures as PNG artifacts', { skip: noRealPackages }, async () => {
    const sandbox = await start({ TASKS_PYTHON__PACKAGES_URL: realPackages });
    const out = await sandbox.runWithArtifacts('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n1');
    assert.equal(out.result.status, 'success', JSON.stringify(out.result));
    assert.equal(out.artifacts.length, 1);
    assert.equal(out.artifacts[0]?.kind, 'matplotlib');
    assert.deepEqual([...(out.artifacts[0]?.data.subarray(0, 4) ?? [])], [0x89, 0x50, 0x4e, 0x47]);
  });

  it('captures plotly figures as JSON artifacts', { skip: noRealPackages }, async () => {
    const sandbox = await start({ TASKS_PYTHON__PACKAGES_URL: realPackages });
    const out = await sandbox.runWithArtifacts(
      'import plotly.graph_objects as go\nfig = go.Figure(go.Scatter(y=[1, 3, 2]))\n1',
    );
    assert.equal(out.result.status, 'success', JSON.stringify(out.result));
    assert.equal(out.artifacts[0]?.kind, 'plotly');
    assert.ok(JSON.parse(new TextDecoder().decode(out.artifacts[0]?.data)).data);
  });
});
