// `node scripts/fetch-pyodide-packages.ts --base-url <URL> --out <dir> pkg...`: fills a directory with
// Pyodide packages and their dependencies from a mirror, checked against the lock's sha256, plus a
// pyodide-lock.json naming only them, for the worker's TASKS_PYTHON__PACKAGES_URL on air-gapped hosts.
// This is the only file of the tool that reads argv, handles signals or exits; it must not import
// service code. NOT EXERCISED against a real distribution: the machine it was written on could reach
// none, so only the local-HTTP-server tests in scripts/test/ have run it (see docs/pyodide-packages.md).
import { mkdir, readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type FetchOptions, parseCliArgs, USAGE } from './lib/pyodide-packages/args.ts';
import { type DownloadResult, downloadPackages } from './lib/pyodide-packages/download.ts';
import { PackagesError } from './lib/pyodide-packages/errors.ts';
import {
  describeVersionMismatch,
  filterLock,
  findInstalledPyodide,
  LOCK_FILE_NAME,
  type PyodideLock,
  readLock,
  writeLockFile,
} from './lib/pyodide-packages/lock.ts';
import { type ResolvedPackage, resolvePackages } from './lib/pyodide-packages/resolve.ts';

const EXIT_REPORTED = 2;
const EXIT_UNEXPECTED = 1;
const EXIT_INTERRUPTED = 130;
const RESUME_HINT = 'files verified so far are kept: run the same command again to resume';

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function warn(line: string): void {
  process.stderr.write(`warning: ${line}\n`);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// Step 1: the lock, checked against the installed pyodide (wheels of another ABI would not load).
async function loadLock(options: FetchOptions): Promise<{ lock: PyodideLock; source: string }> {
  const installed = await findInstalledPyodide();
  if (installed === undefined && options.lock === undefined) {
    throw new PackagesError(
      'bad_lock_file',
      'the pyodide npm package is not installed (run npm ci), so there is no default lock: pass --lock',
    );
  }
  const source = options.lock ?? installed!.lockPath;
  const lock = await readLock(source);
  if (installed === undefined) {
    warn('the pyodide npm package is not installed: cannot check that the lock matches it');
  } else if (resolve(source) !== installed.lockPath) {
    const installedLock = await readLock(installed.lockPath);
    const mismatch = describeVersionMismatch(lock, { version: installed.version, info: installedLock.info });
    if (mismatch !== undefined && !options.allowVersionMismatch) {
      throw new PackagesError(
        'version_mismatch',
        `${mismatch}; the worker could not load these wheels (pass --allow-version-mismatch to fetch anyway)`,
      );
    }
    if (mismatch !== undefined) warn(`${mismatch}; fetching anyway (--allow-version-mismatch)`);
  }
  return { lock, source };
}

function printPlan(source: string, lock: PyodideLock, packages: ResolvedPackage[]): void {
  const info = lock.info;
  const requested = packages.filter((p) => p.requested).length;
  say(
    `${source} (python ${info.python ?? '?'}, abi ${info.abi_version ?? '?'}): ` +
      `${packages.length} packages for ${requested} requested`,
  );
  const width = Math.max(...packages.map((p) => p.key.length));
  for (const p of packages) {
    const why = p.requested ? 'requested' : `needed by ${p.requiredBy}`;
    say(`  ${p.key.padEnd(width)}  ${p.entry.version.padEnd(12)}  ${p.entry.file_name}  (${why})`);
  }
}

// Step 2: download, then the lock last, so the directory only claims packages it really holds.
async function fetchInto(
  options: FetchOptions & { baseUrl: URL; outDir: string },
  lock: PyodideLock,
  packages: ResolvedPackage[],
  signal: AbortSignal,
): Promise<void> {
  const outDir = resolve(options.outDir);
  try {
    await mkdir(outDir, { recursive: true });
  } catch (err) {
    throw new PackagesError('write_failed', `cannot create ${outDir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let done = 0;
  const report = (result: DownloadResult): void => {
    done += 1;
    const what = result.status === 'present' ? 'already present' : result.status;
    say(`[${done}/${packages.length}] ${what.padEnd(15)} ${result.fileName} (${formatBytes(result.bytes)})`);
  };
  const results = await downloadPackages({
    baseUrl: options.baseUrl,
    outDir,
    packages: packages.map((p) => p.entry),
    concurrency: options.concurrency,
    onResult: report,
    signal,
  });
  const lockPath = await writeLockFile(
    outDir,
    filterLock(
      lock,
      packages.map((p) => p.key),
    ),
  );

  const count = (status: DownloadResult['status']): number =>
    results.filter((r) => r.status === status).length;
  const total = results.reduce((sum, r) => sum + r.bytes, 0);
  say();
  say(
    `${results.length} files (${formatBytes(total)}) in ${outDir}: ${count('downloaded')} downloaded, ` +
      `${count('replaced')} replaced, ${count('present')} already present`,
  );
  say(`wrote ${lockPath} listing ${packages.length} packages`);
  const listed = new Set([LOCK_FILE_NAME, ...packages.map((p) => p.entry.file_name)]);
  const extra = (await readdir(outDir)).filter((name) => !name.startsWith('.') && !listed.has(name));
  if (extra.length > 0) {
    warn(
      `${extra.length} file(s) in ${outDir} are not in the new lock and will not be used: ${extra.join(', ')}`,
    );
  }
  say();
  say('Worker settings for this directory:');
  say(`  TASKS_PYTHON__PACKAGES_URL=${outDir}`);
  say(
    `  TASKS_PYTHON__PRELOAD=${packages
      .filter((p) => p.requested)
      .map((p) => p.key)
      .join(',')}`,
  );
}

async function main(argv: string[]): Promise<number> {
  const options = parseCliArgs(argv);
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { lock, source } = await loadLock(options);
  const packages = resolvePackages(lock, options.packages);
  printPlan(source, lock, packages);
  if (options.dryRun) {
    say('dry run: nothing downloaded; sizes unknown (the lock does not record them)');
    return 0;
  }

  // First SIGINT/SIGTERM: abort the downloads, which removes their temp files; a second one exits at once.
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupt.signal.aborted) process.exit(EXIT_INTERRUPTED);
    process.stderr.write(`${signal}: stopping the downloads (again to quit at once)\n`);
    interrupt.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // parseCliArgs requires --base-url and --out unless --dry-run.
    await fetchInto(
      { ...options, baseUrl: options.baseUrl!, outDir: options.outDir! },
      lock,
      packages,
      interrupt.signal,
    );
  } catch (err) {
    if (!interrupt.signal.aborted) throw err;
    process.stderr.write(`interrupted: ${RESUME_HINT}\n`);
    return EXIT_INTERRUPTED;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (err: unknown) => {
    if (err instanceof PackagesError) {
      process.stderr.write(`error [${err.code}]: ${err.message}\n`);
      if (err.code === 'download_failed' || err.code === 'checksum_mismatch') {
        process.stderr.write(`${RESUME_HINT}\n`);
      }
      process.exit(EXIT_REPORTED);
    }
    process.stderr.write(
      `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(EXIT_UNEXPECTED);
  },
);
