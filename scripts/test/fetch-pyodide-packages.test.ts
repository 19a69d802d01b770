// scripts/fetch-pyodide-packages.ts and its modules: argument parsing, lock parsing, resolution on
// the real installed pyodide-lock.json, and downloads from a real HTTP server on 127.0.0.1 serving
// fake package files listed in a fake lock. No mocks of fetch.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_CONCURRENCY, type FetchOptions, parseCliArgs, USAGE } from '../lib/pyodide-packages/args.ts';
import { downloadPackages, hashFile } from '../lib/pyodide-packages/download.ts';
import { PackagesError, type PackagesErrorCode } from '../lib/pyodide-packages/errors.ts';
import {
  describeVersionMismatch,
  filterLock,
  findInstalledPyodide,
  type InstalledPyodide,
  type LockPackage,
  lockProblems,
  type PyodideLock,
  parseLock,
  readLock,
  writeLockFile,
} from '../lib/pyodide-packages/lock.ts';
import {
  editDistance,
  findPackage,
  normalizeName,
  resolvePackages,
  suggestNames,
} from '../lib/pyodide-packages/resolve.ts';

const SCRIPT = resolve(import.meta.dirname, '../fetch-pyodide-packages.ts');

function isPackagesError(code: PackagesErrorCode, message?: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof PackagesError, `expected a PackagesError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  };
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function entry(name: string, fields: Partial<LockPackage> = {}): LockPackage {
  return {
    name,
    version: '1.0.0',
    file_name: `${name}-1.0.0-py3-none-any.whl`,
    install_dir: 'site',
    sha256: sha256(name),
    imports: [name],
    depends: [],
    package_type: 'package',
    ...fields,
  };
}

function lockOf(...entries: LockPackage[]): PyodideLock {
  return {
    info: { abi_version: '2026_0', arch: 'wasm32', platform: 'emscripten_5_0_3', python: '3.14.2' },
    packages: Object.fromEntries(entries.map((e) => [normalizeName(e.name), e])),
  };
}

// ------------------------------------------------------------------------------------------ Args

describe('parseCliArgs(argv)', () => {
  const required = ['--base-url', 'http://127.0.0.1:9/pyodide/full', '--out', 'out'];

  it('prints help for --help and -h, even with other arguments', () => {
    assert.deepEqual(parseCliArgs(['--help']), { help: true });
    assert.deepEqual(parseCliArgs(['-h', 'numpy']), { help: true });
  });

  it('reads positional packages with defaults for everything else', () => {
    const options = parseCliArgs([...required, 'numpy', 'pandas']) as FetchOptions;
    assert.equal(options.help, false);
    assert.equal(options.baseUrl?.href, 'http://127.0.0.1:9/pyodide/full/');
    assert.equal(options.outDir, 'out');
    assert.equal(options.lock, undefined);
    assert.deepEqual(options.packages, ['numpy', 'pandas']);
    assert.equal(options.dryRun, false);
    assert.equal(options.allowVersionMismatch, false);
    assert.equal(options.concurrency, DEFAULT_CONCURRENCY);
  });

  it('reads --packages lists, repeated or mixed with positionals, and drops repeats case-insensitively', () => {
    const options = parseCliArgs([
      ...required,
      '--packages',
      'numpy, pandas,,',
      'scipy',
      '--packages=NumPy,matplotlib',
    ]) as FetchOptions;
    assert.deepEqual(options.packages, ['scipy', 'numpy', 'pandas', 'matplotlib']);
  });

  it('reads --lock, --dry-run, --allow-version-mismatch and --concurrency', () => {
    const options = parseCliArgs([
      ...required,
      '--lock=/tmp/pyodide-lock.json',
      '--dry-run',
      '--allow-version-mismatch',
      '--concurrency',
      '8',
      'numpy',
    ]) as FetchOptions;
    assert.equal(options.lock, '/tmp/pyodide-lock.json');
    assert.equal(options.dryRun, true);
    assert.equal(options.allowVersionMismatch, true);
    assert.equal(options.concurrency, 8);
  });

  it('keeps a base URL that already ends with a slash as it is', () => {
    const options = parseCliArgs([
      '--base-url=https://mirror.internal/full/',
      '--out=o',
      'numpy',
    ]) as FetchOptions;
    assert.equal(options.baseUrl?.href, 'https://mirror.internal/full/');
  });

  it('does not require --base-url or --out for a dry run', () => {
    const options = parseCliArgs(['--dry-run', 'numpy']) as FetchOptions;
    assert.equal(options.baseUrl, undefined);
    assert.equal(options.outDir, undefined);
  });

  const errors: [string, string[], RegExp][] = [
    ['no package', [...required], /no packages given/],
    ['only empty --packages entries', [...required, '--packages', ' , '], /no packages given/],
    ['a missing --base-url', ['--out', 'o', 'numpy'], /--base-url is required/],
    ['a missing --out', ['--base-url', 'http://127.0.0.1:9/', 'numpy'], /--out is required/],
    [
      'an empty --out',
      ['--base-url', 'http://127.0.0.1:9/', '--out', ' ', 'numpy'],
      /--out must not be empty/,
    ],
    ['an empty --lock', [...required, '--lock=', 'numpy'], /--lock must not be empty/],
    ['a base URL that does not parse', ['--base-url', 'mirror/full', '--out', 'o', 'numpy'], /not a URL/],
    ['a non-http base URL', ['--base-url', 'file:///srv/full', '--out', 'o', 'numpy'], /http or https/],
    ['a base URL with a query', ['--base-url', 'http://127.0.0.1:9/?a=1', '--out', 'o', 'numpy'], /query/],
    ['a version specifier', [...required, 'numpy==2.4.6'], /not a package name: "numpy==2.4.6"/],
    ['an extra', [...required, '--packages', 'pandas[all]'], /not a package name/],
    ['a path', [...required, '../numpy'], /not a package name/],
    [
      'concurrency 0',
      [...required, '--concurrency', '0', 'numpy'],
      /--concurrency must be an integer from 1/,
    ],
    ['concurrency above the cap', [...required, '--concurrency', '33', 'numpy'], /--concurrency/],
    ['a fractional concurrency', [...required, '--concurrency', '1.5', 'numpy'], /--concurrency/],
    ['a non-numeric concurrency', [...required, '--concurrency', 'many', 'numpy'], /--concurrency/],
    ['an unknown option', [...required, '--mirror', 'x', 'numpy'], /Unknown option '--mirror'/],
    ['an option without its value', [...required, 'numpy', '--out'], /--out/],
    ['a value given to a flag', [...required, '--dry-run=yes', 'numpy'], /dry-run/],
  ];
  for (const [what, argv, message] of errors) {
    it(`rejects ${what} with bad_arguments`, () => {
      assert.throws(() => parseCliArgs(argv), isPackagesError('bad_arguments', message));
    });
  }

  it('documents every option and the untested state in the usage text', () => {
    for (const option of [
      '--base-url',
      '--out',
      '--packages',
      '--lock',
      '--allow-version-mismatch',
      '--concurrency',
      '--dry-run',
      '--help',
    ]) {
      assert.ok(USAGE.includes(option), option);
    }
    assert.match(USAGE, /never been run against a real distribution/);
  });
});

// ------------------------------------------------------------------------------------------ Lock

describe('parseLock(text, source)', () => {
  it('accepts a lock and keeps fields it does not know', () => {
    const text = JSON.stringify({ ...lockOf(entry('a', { tool: { x: 1 } })), tool: {} });
    const lock = parseLock(text, 'fake.json');
    assert.deepEqual(lock.tool, {});
    assert.deepEqual(lock.packages.a?.tool, { x: 1 });
  });

  it('rejects text that is not JSON', () => {
    assert.throws(
      () => parseLock('{"info":', 'fake.json'),
      isPackagesError('bad_lock_file', /fake.json is not JSON/),
    );
  });

  it('rejects a lock without info or packages', () => {
    assert.throws(
      () => parseLock('[]', 'fake.json'),
      isPackagesError('bad_lock_file', /not a usable Pyodide lock file:\n {2}\/: expected an object/),
    );
    assert.deepEqual(lockProblems({}), ['/info: expected an object', '/packages: expected an object']);
    assert.deepEqual(lockProblems({ info: {}, packages: {} }), ['/packages: lists no package']);
  });

  it('names every bad field of every package', () => {
    const bad = {
      info: { version: 314 },
      packages: {
        a: { ...entry('a'), sha256: 'abc', depends: 'numpy' },
        b: { ...entry('b'), name: '', imports: [1] },
        c: 'not an object',
      },
    };
    assert.deepEqual(lockProblems(bad), [
      '/info/version: expected a string',
      '/packages/a/sha256: expected 64 hex digits',
      '/packages/a/depends: expected an array of strings',
      '/packages/b/name: expected a string',
      '/packages/b/imports: expected an array of strings',
      '/packages/c: expected an object',
    ]);
    assert.throws(
      () => parseLock(JSON.stringify(bad), 'fake.json'),
      isPackagesError('bad_lock_file', /sha256/),
    );
  });

  it('refuses file names that would leave the output directory, and absolute URLs', () => {
    for (const fileName of ['../evil.whl', '/etc/evil.whl', 'sub/dir.whl', '..', '.hidden.whl', 'a\\b.whl']) {
      assert.deepEqual(lockProblems(lockOf(entry('a', { file_name: fileName }))), [
        `/packages/a/file_name: expected a bare file name, got ${JSON.stringify(fileName)}`,
      ]);
    }
    const url = 'http://127.0.0.1:9/a-1.0.0-py3-none-any.whl';
    assert.equal(lockProblems(lockOf(entry('a', { file_name: url }))).length, 1);
  });

  it('reports at most ten problems and counts the rest', () => {
    const entries = Array.from({ length: 12 }, (_, i) => entry(`p${i}`, { sha256: 'x' }));
    assert.throws(
      () => parseLock(JSON.stringify(lockOf(...entries)), 'fake.json'),
      isPackagesError('bad_lock_file', /and 2 more/),
    );
  });

  it('accepts the installed pyodide-lock.json', async () => {
    const installed = await findInstalledPyodide();
    assert.ok(installed !== undefined);
    assert.deepEqual(lockProblems(JSON.parse(await readFile(installed.lockPath, 'utf8'))), []);
  });
});

describe('findInstalledPyodide()', () => {
  it('finds the pyodide package of this repository and its lock', async () => {
    const installed = await findInstalledPyodide();
    assert.ok(installed !== undefined);
    const manifest = JSON.parse(await readFile(resolve(installed.lockPath, '../package.json'), 'utf8'));
    assert.equal(installed.version, manifest.version);
    assert.ok(existsSync(installed.lockPath));
  });
});

describe('describeVersionMismatch(lock, installed)', () => {
  const installedInfo = lockOf().info;
  const installed = { version: '314.0.7', info: installedInfo };

  it('accepts a lock with the same ABI fields and no version', () => {
    assert.equal(describeVersionMismatch(lockOf(), installed), undefined);
  });

  it('compares info.version with the installed version when the lock has one', () => {
    const same = { ...lockOf(), info: { ...installedInfo, version: '314.0.7' } };
    const other = { ...lockOf(), info: { ...installedInfo, version: '0.29.3' } };
    assert.equal(describeVersionMismatch(same, installed), undefined);
    assert.equal(
      describeVersionMismatch(other, installed),
      'the lock is for Pyodide 0.29.3, the installed pyodide is 314.0.7',
    );
  });

  it('names each ABI field that differs when the lock has no version', () => {
    const other = { ...lockOf(), info: { ...installedInfo, abi_version: '2025_0', python: '3.13.2' } };
    assert.equal(
      describeVersionMismatch(other, installed),
      'the lock does not match the installed pyodide 314.0.7: abi_version 2025_0 instead of 2026_0, python 3.13.2 instead of 3.14.2',
    );
  });
});

// ------------------------------------------------------------------------------------ Resolution

describe('resolvePackages(lock, names) on the installed lock', () => {
  let lock: PyodideLock;
  before(async () => {
    const installed = await findInstalledPyodide();
    assert.ok(installed !== undefined, 'the pyodide npm package must be installed');
    lock = await readLock(installed.lockPath);
  });

  const keys = (names: string[]): string[] => resolvePackages(lock, names).map((p) => p.key);

  it('adds pandas’ dependencies from the lock, transitively (six comes through python-dateutil)', () => {
    assert.deepEqual(lock.packages.pandas?.depends, ['numpy', 'python-dateutil', 'pytz']);
    assert.deepEqual(keys(['pandas']), ['numpy', 'pandas', 'python-dateutil', 'pytz', 'six']);
    const six = resolvePackages(lock, ['pandas']).find((p) => p.key === 'six');
    assert.deepEqual([six?.requested, six?.requiredBy], [false, 'python-dateutil']);
  });

  it('matches an import name: sklearn is scikit-learn', () => {
    assert.equal(findPackage(lock, 'sklearn'), 'scikit-learn');
    assert.equal(findPackage(lock, 'PIL'), 'pillow');
    assert.equal(findPackage(lock, 'dateutil'), 'python-dateutil');
    assert.deepEqual(keys(['sklearn']), ['joblib', 'numpy', 'scikit-learn', 'scipy', 'threadpoolctl']);
  });

  it('matches names case-insensitively and with -, _ and . alike', () => {
    assert.equal(findPackage(lock, 'NumPy'), 'numpy');
    assert.equal(findPackage(lock, 'Pydantic_Core'), 'pydantic-core');
    assert.equal(findPackage(lock, 'ruamel_yaml'), 'ruamel-yaml');
  });

  it('follows depends written with another spelling (pydantic depends on "pydantic_core")', () => {
    assert.ok(lock.packages.pydantic?.depends.includes('pydantic_core'));
    assert.ok(keys(['pydantic']).includes('pydantic-core'));
  });

  it('resolves the worker’s list once, requested packages marked, sorted by key', () => {
    const resolved = resolvePackages(lock, ['numpy', 'pandas', 'pydantic', 'sklearn', 'scipy', 'matplotlib']);
    const keyList = resolved.map((p) => p.key);
    assert.deepEqual(keyList, [...keyList].sort());
    assert.equal(new Set(keyList).size, keyList.length);
    assert.deepEqual(
      resolved.filter((p) => p.requested).map((p) => p.key),
      ['matplotlib', 'numpy', 'pandas', 'pydantic', 'scikit-learn', 'scipy'],
    );
    for (const p of resolved) {
      for (const dependency of p.entry.depends)
        assert.ok(keyList.includes(findPackage(lock, dependency)), dependency);
    }
    assert.ok(keyList.includes('pillow') && keyList.includes('pydantic-core'));
  });

  it('keeps a package requested when another requested package also depends on it', () => {
    const numpy = resolvePackages(lock, ['pandas', 'numpy']).find((p) => p.key === 'numpy');
    assert.deepEqual([numpy?.requested, numpy?.requiredBy], [true, undefined]);
  });

  it('rejects a package the lock does not list, with close names', () => {
    assert.throws(
      () => resolvePackages(lock, ['numpyy']),
      isPackagesError('unknown_package', /did you mean numpy\?/),
    );
    assert.throws(
      () => resolvePackages(lock, ['plotly']),
      isPackagesError('unknown_package', /"plotly" is neither a package nor an import/),
    );
  });

  it('reports every unknown name at once', () => {
    assert.throws(
      () => resolvePackages(lock, ['numpy', 'panda', 'scipi']),
      isPackagesError('unknown_package', /"panda".*pandas\?\n"scipi".*scipy\?/s),
    );
  });
});

describe('findPackage(lock, name) and resolvePackages on a fake lock', () => {
  it('rejects an import name that several packages provide with ambiguous_package', () => {
    const lock = lockOf(entry('alpha', { imports: ['shared'] }), entry('beta', { imports: ['shared'] }));
    assert.throws(() => findPackage(lock, 'shared'), isPackagesError('ambiguous_package', /alpha, beta/));
  });

  it('prefers a package name over another package’s import name', () => {
    const lock = lockOf(entry('alpha', { imports: ['beta'] }), entry('beta', { imports: ['b'] }));
    assert.equal(findPackage(lock, 'beta'), 'beta');
  });

  it('reports a dependency missing from the lock as bad_lock_file', () => {
    const lock = lockOf(entry('alpha', { depends: ['ghost'] }));
    assert.throws(
      () => resolvePackages(lock, ['alpha']),
      isPackagesError('bad_lock_file', /alpha depends on "ghost"/),
    );
  });

  it('survives a dependency cycle', () => {
    const lock = lockOf(entry('alpha', { depends: ['beta'] }), entry('beta', { depends: ['alpha'] }));
    assert.deepEqual(
      resolvePackages(lock, ['alpha']).map((p) => p.key),
      ['alpha', 'beta'],
    );
  });
});

describe('suggestNames(lock, name) and editDistance(a, b)', () => {
  const lock = lockOf(
    entry('numpy'),
    entry('numpy-tests'),
    entry('pandas'),
    entry('scikit-learn', { imports: ['sklearn'] }),
  );

  it('suggests by edit distance, by prefix and by import name, never -tests packages unless asked', () => {
    assert.deepEqual(suggestNames(lock, 'numpi'), ['numpy']);
    assert.deepEqual(suggestNames(lock, 'scikit'), ['scikit-learn']);
    assert.deepEqual(suggestNames(lock, 'sklarn'), ['scikit-learn']);
    assert.deepEqual(suggestNames(lock, 'numpy-test'), ['numpy', 'numpy-tests']);
    assert.deepEqual(suggestNames(lock, 'nupmy'), ['numpy']);
    assert.deepEqual(suggestNames(lock, 'torch'), []);
  });

  it('counts insertions, deletions, substitutions and swapped neighbours as one edit each', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('alpah', 'alpha'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('same', 'same'), 0);
  });
});

// ---------------------------------------------------------------------------------- Output lock

describe('filterLock(lock, keys) and writeLockFile(dir, lock)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pyodide-lock-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps info and other top-level fields and only the selected entries, unchanged', () => {
    const original = {
      ...lockOf(entry('alpha', { unvendored_tests: true }), entry('beta'), entry('gamma')),
      tool: {},
    };
    const filtered = filterLock(original, ['gamma', 'alpha']);
    assert.deepEqual(Object.keys(filtered.packages), ['alpha', 'gamma']);
    assert.equal(filtered.info, original.info);
    assert.deepEqual(filtered.tool, {});
    assert.deepEqual(filtered.packages.alpha, original.packages.alpha);
    assert.equal(Object.keys(original.packages).length, 3, 'the original lock is not modified');
  });

  it('writes a lock that parses back to the same packages, leaving no temp file', async () => {
    const filtered = filterLock(lockOf(entry('alpha'), entry('beta')), ['beta']);
    const path = await writeLockFile(dir, filtered);
    assert.equal(path, join(dir, 'pyodide-lock.json'));
    assert.deepEqual(parseLock(await readFile(path, 'utf8'), path), filtered);
    assert.deepEqual(await readdir(dir), ['pyodide-lock.json']);
  });

  it('builds the output lock of a real resolution from the installed lock', async () => {
    const installed = (await findInstalledPyodide()) as InstalledPyodide;
    const lock = await readLock(installed.lockPath);
    const selected = resolvePackages(lock, ['pandas']).map((p) => p.key);
    const filtered = filterLock(lock, selected);
    assert.deepEqual(filtered.info, lock.info);
    assert.deepEqual(Object.keys(filtered.packages), selected);
    assert.deepEqual(filtered.packages.pandas, lock.packages.pandas);
  });
});

// ------------------------------------------------------------------------------------- Downloads

interface FakeDistribution {
  server: Server;
  baseUrl: URL;
  /** GET requests per file name. */
  hits: Map<string, number>;
}

const FILES = {
  'alpha-1.0.0-py3-none-any.whl': Buffer.from('alpha wheel\n'.repeat(5000)),
  'beta-2.0.0-py3-none-any.whl': Buffer.from('beta wheel\n'.repeat(300)),
  'libgamma-1.0.zip': Buffer.from('gamma shared library\n'),
  'tampered-1.0.0-py3-none-any.whl': Buffer.from('what the server really has\n'),
};

// alpha depends on beta and libgamma; "tampered" is served with other bytes than the lock's hash;
// "missing" is not served at all (404).
const FAKE_LOCK = lockOf(
  entry('alpha', {
    file_name: 'alpha-1.0.0-py3-none-any.whl',
    sha256: sha256(FILES['alpha-1.0.0-py3-none-any.whl']),
    depends: ['Beta', 'libgamma'],
  }),
  entry('beta', {
    version: '2.0.0',
    file_name: 'beta-2.0.0-py3-none-any.whl',
    sha256: sha256(FILES['beta-2.0.0-py3-none-any.whl']),
  }),
  entry('libgamma', {
    file_name: 'libgamma-1.0.zip',
    sha256: sha256(FILES['libgamma-1.0.zip']),
    install_dir: 'dynlib',
    package_type: 'shared_library',
    imports: [],
  }),
  entry('tampered', {
    file_name: 'tampered-1.0.0-py3-none-any.whl',
    sha256: sha256('what the lock was built from\n'),
  }),
  entry('missing'),
  entry('truncated', { file_name: 'truncated-1.0.0-py3-none-any.whl' }),
  entry('stalled', { file_name: 'stalled-1.0.0-py3-none-any.whl' }),
);

async function startFakeDistribution(): Promise<FakeDistribution> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/dist\//, ''));
    hits.set(name, (hits.get(name) ?? 0) + 1);
    const body = (FILES as Record<string, Buffer>)[name];
    if (body !== undefined) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    } else if (name === 'pyodide-lock.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(FAKE_LOCK));
    } else if (name === 'truncated-1.0.0-py3-none-any.whl') {
      // Promises 1000 bytes, sends 10, then drops the connection.
      res.writeHead(200, { 'content-length': 1000 });
      res.write('0123456789', () => res.destroy());
    } else if (name === 'stalled-1.0.0-py3-none-any.whl') {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('0123456789');
    } else {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, baseUrl: new URL(`http://127.0.0.1:${address.port}/dist/`), hits };
}

async function stopFakeDistribution(dist: FakeDistribution): Promise<void> {
  dist.server.closeAllConnections();
  await new Promise<void>((done) => dist.server.close(() => done()));
}

function packagesOf(...keys: string[]): LockPackage[] {
  return keys.map((key) => FAKE_LOCK.packages[key]!);
}

describe('readLock(source)', () => {
  let dist: FakeDistribution;
  before(async () => {
    dist = await startFakeDistribution();
  });
  after(async () => {
    await stopFakeDistribution(dist);
  });

  it('reads a lock from an http URL', async () => {
    assert.deepEqual(await readLock(new URL('pyodide-lock.json', dist.baseUrl).href), FAKE_LOCK);
  });

  it('reports an HTTP error as bad_lock_file', async () => {
    const url = new URL('nope/pyodide-lock.json', dist.baseUrl).href;
    await assert.rejects(readLock(url), isPackagesError('bad_lock_file', /cannot fetch .*: HTTP 404/));
  });

  it('reports a missing file as bad_lock_file', async () => {
    await assert.rejects(
      readLock('/nonexistent/pyodide-lock.json'),
      isPackagesError('bad_lock_file', /ENOENT/),
    );
  });

  it('reports a file that is not a lock as bad_lock_file', async () => {
    await assert.rejects(
      readLock(resolve(import.meta.dirname, '../../package.json')),
      isPackagesError('bad_lock_file', /not a usable Pyodide lock file/),
    );
  });
});

describe('downloadPackages(options) from a local HTTP server', () => {
  let dist: FakeDistribution;
  let root: string;
  let n = 0;
  const freshDir = async (): Promise<string> => {
    n += 1;
    const dir = join(root, `out-${n}`);
    await rm(dir, { recursive: true, force: true });
    return dir;
  };

  before(async () => {
    dist = await startFakeDistribution();
    root = await mkdtemp(join(tmpdir(), 'pyodide-packages-'));
  });
  after(async () => {
    await stopFakeDistribution(dist);
    await rm(root, { recursive: true, force: true });
  });

  async function download(outDir: string, keys: string[], signal?: AbortSignal) {
    await mkdir(outDir, { recursive: true });
    return downloadPackages({
      baseUrl: dist.baseUrl,
      outDir,
      packages: packagesOf(...keys),
      concurrency: 2,
      ...(signal === undefined ? {} : { signal }),
    });
  }

  it('writes each file with the content the lock describes', async () => {
    const out = await freshDir();
    const results = await download(out, ['alpha', 'beta', 'libgamma']);
    assert.deepEqual(
      results.map((r) => [r.fileName, r.status, r.bytes]).sort(),
      Object.entries(FILES)
        .filter(([name]) => !name.startsWith('tampered'))
        .map(([name, body]) => [name, 'downloaded', body.length])
        .sort(),
    );
    for (const key of ['alpha', 'beta', 'libgamma']) {
      const { file_name, sha256: expected } = FAKE_LOCK.packages[key]!;
      assert.deepEqual(await readFile(join(out, file_name)), (FILES as Record<string, Buffer>)[file_name]);
      assert.equal((await hashFile(join(out, file_name)))?.sha256, expected);
    }
    assert.deepEqual((await readdir(out)).sort(), [
      'alpha-1.0.0-py3-none-any.whl',
      'beta-2.0.0-py3-none-any.whl',
      'libgamma-1.0.zip',
    ]);
  });

  it('skips files already present with the right hash, without asking the server', async () => {
    const out = await freshDir();
    await download(out, ['alpha', 'beta']);
    const before = dist.hits.get('alpha-1.0.0-py3-none-any.whl');
    const results = await download(out, ['alpha', 'beta']);
    assert.deepEqual(
      results.map((r) => r.status),
      ['present', 'present'],
    );
    assert.equal(dist.hits.get('alpha-1.0.0-py3-none-any.whl'), before);
  });

  it('replaces a present file whose hash is wrong', async () => {
    const out = await freshDir();
    await download(out, ['beta']);
    const path = join(out, 'beta-2.0.0-py3-none-any.whl');
    await writeFile(path, 'corrupted');
    const [result] = await download(out, ['beta']);
    assert.equal(result?.status, 'replaced');
    assert.deepEqual(await readFile(path), FILES['beta-2.0.0-py3-none-any.whl']);
  });

  it('rejects a file whose sha256 differs from the lock with checksum_mismatch and leaves nothing behind', async () => {
    const out = await freshDir();
    await assert.rejects(
      download(out, ['tampered']),
      isPackagesError(
        'checksum_mismatch',
        /tampered-1\.0\.0-py3-none-any\.whl: sha256 [0-9a-f]{64} \(27 bytes\), the lock says/,
      ),
    );
    assert.deepEqual(await readdir(out), []);
  });

  it('reports a 404 as download_failed and writes nothing', async () => {
    const out = await freshDir();
    await assert.rejects(
      download(out, ['missing']),
      isPackagesError('download_failed', /missing-1\.0\.0-py3-none-any\.whl answered HTTP 404 Not Found/),
    );
    assert.deepEqual(await readdir(out), []);
  });

  it('reports a connection dropped mid-body as download_failed and removes the temp file', async () => {
    const out = await freshDir();
    await assert.rejects(
      download(out, ['truncated']),
      isPackagesError('download_failed', /broke off after \d+ bytes/),
    );
    assert.deepEqual(await readdir(out), []);
  });

  it('reports a refused connection as download_failed with the socket error', async () => {
    const out = await freshDir();
    const closed = await startFakeDistribution();
    const baseUrl = closed.baseUrl;
    await stopFakeDistribution(closed);
    await mkdir(out, { recursive: true });
    await assert.rejects(
      downloadPackages({ baseUrl, outDir: out, packages: packagesOf('beta'), concurrency: 1 }),
      isPackagesError('download_failed', /ECONNREFUSED/),
    );
  });

  it('keeps the files verified before a failure, so a rerun only fetches the rest', async () => {
    const out = await freshDir();
    await mkdir(out, { recursive: true });
    await assert.rejects(
      downloadPackages({
        baseUrl: dist.baseUrl,
        outDir: out,
        packages: packagesOf('beta', 'missing'),
        concurrency: 1,
      }),
      isPackagesError('download_failed'),
    );
    assert.deepEqual(await readdir(out), ['beta-2.0.0-py3-none-any.whl']);
  });

  it('stops on abort and removes the partial file', async () => {
    const out = await freshDir();
    const controller = new AbortController();
    const pending = download(out, ['stalled'], controller.signal);
    // Abort once the body has started to arrive (the temp file exists).
    for (let i = 0; i < 200 && (await readdir(out).catch(() => [])).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await readdir(out)).length, 1, 'the temp file exists while the body arrives');
    controller.abort(new Error('stop now'));
    await assert.rejects(pending, /stop now/);
    assert.deepEqual(await readdir(out), []);
  });
});

// ------------------------------------------------------------------------------------------- CLI

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[]): Promise<RunResult> {
  return new Promise((done) => {
    execFile(process.execPath, [SCRIPT, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      done({ status, stdout, stderr });
    });
  });
}

describe('node scripts/fetch-pyodide-packages.ts', () => {
  let dist: FakeDistribution;
  let root: string;
  let lockPath: string;
  let mismatchedLockPath: string;

  before(async () => {
    dist = await startFakeDistribution();
    root = await mkdtemp(join(tmpdir(), 'pyodide-cli-'));
    // The fake lock claims the installed pyodide's ABI, so no version mismatch is reported.
    const installed = (await findInstalledPyodide()) as InstalledPyodide;
    const installedInfo = (await readLock(installed.lockPath)).info;
    lockPath = join(root, 'fake-lock.json');
    await writeFile(lockPath, JSON.stringify({ ...FAKE_LOCK, info: installedInfo }));
    mismatchedLockPath = join(root, 'old-lock.json');
    await writeFile(
      mismatchedLockPath,
      JSON.stringify({ ...FAKE_LOCK, info: { ...installedInfo, abi_version: '2024_0' } }),
    );
  });
  after(async () => {
    await stopFakeDistribution(dist);
    await rm(root, { recursive: true, force: true });
  });

  it('prints the usage and exits 0 for --help', async () => {
    const { status, stdout } = await runCli(['--help']);
    assert.equal(status, 0);
    assert.equal(stdout, USAGE);
  });

  it('fetches the packages with their dependencies and writes a lock of just those', async () => {
    const out = join(root, 'packages');
    const { status, stdout, stderr } = await runCli([
      '--base-url',
      dist.baseUrl.href,
      '--out',
      out,
      '--lock',
      lockPath,
      'ALPHA',
    ]);
    assert.equal(status, 0, stderr);
    assert.equal(stderr, '');
    assert.deepEqual((await readdir(out)).sort(), [
      'alpha-1.0.0-py3-none-any.whl',
      'beta-2.0.0-py3-none-any.whl',
      'libgamma-1.0.zip',
      'pyodide-lock.json',
    ]);
    const written = parseLock(await readFile(join(out, 'pyodide-lock.json'), 'utf8'), 'written lock');
    assert.deepEqual(Object.keys(written.packages), ['alpha', 'beta', 'libgamma']);
    assert.deepEqual(written.packages.alpha, FAKE_LOCK.packages.alpha);
    assert.match(stdout, /3 files \(.*\) in .*: 3 downloaded, 0 replaced, 0 already present/);
    assert.match(stdout, new RegExp(`TASKS_PYTHON__PACKAGES_URL=${out}\n`));
    assert.match(stdout, /TASKS_PYTHON__PRELOAD=alpha\n/);

    const again = await runCli([
      '--base-url',
      dist.baseUrl.href,
      '--out',
      out,
      '--lock',
      lockPath,
      '--packages',
      'alpha',
    ]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /0 downloaded, 0 replaced, 3 already present/);
  });

  it('prints the plan and downloads nothing with --dry-run', async () => {
    const out = join(root, 'dry');
    const hitsBefore = [...dist.hits.values()].reduce((a, b) => a + b, 0);
    const { status, stdout } = await runCli(['--dry-run', '--out', out, '--lock', lockPath, 'alpha']);
    assert.equal(status, 0);
    assert.match(stdout, /3 packages for 1 requested/);
    assert.match(stdout, /beta +2\.0\.0 +beta-2\.0\.0-py3-none-any\.whl +\(needed by alpha\)/);
    assert.match(stdout, /sizes unknown/);
    assert.equal(existsSync(out), false);
    assert.equal(
      [...dist.hits.values()].reduce((a, b) => a + b, 0),
      hitsBefore,
    );
  });

  it('resolves against the installed lock by default', async () => {
    const { status, stdout } = await runCli(['--dry-run', 'sklearn']);
    assert.equal(status, 0);
    assert.match(stdout, /node_modules\/pyodide\/pyodide-lock\.json .*: 5 packages for 1 requested/);
    assert.match(stdout, /scikit-learn .*\(requested\)/);
  });

  const failures: [string, () => string[], PackagesErrorCode, RegExp][] = [
    ['no arguments', () => [], 'bad_arguments', /no packages given/],
    [
      'an unknown package',
      () => ['--dry-run', '--lock', lockPath, 'alpah'],
      'unknown_package',
      /did you mean alpha\?/,
    ],
    [
      'an unreadable lock',
      () => ['--dry-run', '--lock', join(root, 'nope.json'), 'alpha'],
      'bad_lock_file',
      /cannot read/,
    ],
    [
      'a lock of another pyodide',
      () => ['--dry-run', '--lock', mismatchedLockPath, 'alpha'],
      'version_mismatch',
      /abi_version 2024_0 instead of/,
    ],
    [
      'a checksum mismatch',
      () => ['--base-url', dist.baseUrl.href, '--out', join(root, 'bad'), '--lock', lockPath, 'tampered'],
      'checksum_mismatch',
      /run the same command again to resume/,
    ],
    [
      'a missing file',
      () => ['--base-url', dist.baseUrl.href, '--out', join(root, 'bad'), '--lock', lockPath, 'missing'],
      'download_failed',
      /HTTP 404/,
    ],
  ];
  for (const [what, args, code, message] of failures) {
    it(`exits 2 and prints the ${code} code for ${what}`, async () => {
      const { status, stderr } = await runCli(args());
      assert.equal(status, 2, stderr);
      assert.match(stderr, new RegExp(`^error \\[${code}\\]: `));
      assert.match(stderr, message);
      assert.equal(existsSync(join(root, 'bad', 'pyodide-lock.json')), false, 'no lock after a failure');
    });
  }

  it('only warns about a lock of another pyodide with --allow-version-mismatch', async () => {
    const { status, stderr } = await runCli([
      '--dry-run',
      '--allow-version-mismatch',
      '--lock',
      mismatchedLockPath,
      'alpha',
    ]);
    assert.equal(status, 0);
    assert.match(stderr, /^warning: the lock does not match the installed pyodide .*fetching anyway/);
  });
});
