// Command line of `scripts/fetch-pyodide-packages.ts`: turns argv into checked options or a
// `bad_arguments` PackagesError. Pure (no I/O), so every form and error is unit-tested; it must not
// import service code.
import { parseArgs } from 'node:util';
import { PackagesError } from './errors.ts';

export const DEFAULT_CONCURRENCY = 4;
export const MAX_CONCURRENCY = 32;

export const USAGE = `Usage: node scripts/fetch-pyodide-packages.ts --base-url <URL> --out <dir> [options] <package>...

Downloads Pyodide packages, with every dependency the lock file lists for them, into <dir>, checks
each file's sha256 against the lock, and writes <dir>/pyodide-lock.json listing only those packages.
The directory is then a self-contained package source for the worker (TASKS_PYTHON__PACKAGES_URL).
Run it on a machine that can reach a Pyodide distribution, then copy <dir> to the air-gapped hosts.

Options:
  --base-url <URL>          http(s) URL of a Pyodide distribution (the directory holding its
                            pyodide-lock.json and wheels) of the same version as the installed
                            pyodide package. There is no default: name your mirror explicitly.
  --out <dir>               Directory to fill (created if missing). Files already there with the
                            right sha256 are kept, so an interrupted run can simply be repeated.
  --packages <a,b,c>        Packages to fetch, comma-separated; may be combined with positional names.
  --lock <path or URL>      Lock file to resolve against. Default: the installed
                            node_modules/pyodide/pyodide-lock.json.
  --allow-version-mismatch  Only warn when the lock does not belong to the installed pyodide version.
  --concurrency <N>         Parallel downloads, 1-${MAX_CONCURRENCY} (default ${DEFAULT_CONCURRENCY}).
  --dry-run                 Print the resolved package list and download nothing (--base-url and
                            --out are then optional).
  -h, --help                Print this help and exit.

Package names match the lock case-insensitively (pydantic_core = pydantic-core) and by import name
(sklearn = scikit-learn, PIL = pillow). Versions cannot be chosen: the lock pins one per package.

Exit status: 0 on success, 2 on a reported error (its code is printed: bad_arguments, bad_lock_file,
version_mismatch, unknown_package, ambiguous_package, download_failed, checksum_mismatch,
write_failed), 1 on anything unexpected.

Note: this script was written where no Pyodide distribution is reachable. Its download step is
tested against a local HTTP server only; it has never been run against a real distribution.
`;

export interface FetchOptions {
  help: false;
  /** Always ends with '/', so `new URL(fileName, baseUrl)` stays inside it. */
  baseUrl: URL | undefined;
  outDir: string | undefined;
  lock: string | undefined;
  packages: string[];
  dryRun: boolean;
  allowVersionMismatch: boolean;
  concurrency: number;
}

export type CliOptions = { help: true } | FetchOptions;

// A project name as PEP 508 allows it; anything else (`numpy==2.4`, `numpy[extra]`, a path) is refused
// here rather than reported as an unknown package.
const PACKAGE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

function badArguments(message: string, cause?: unknown): PackagesError {
  return new PackagesError('bad_arguments', `${message} (see --help)`, cause === undefined ? {} : { cause });
}

export function parseCliArgs(argv: readonly string[]): CliOptions {
  let parsed: ReturnType<typeof parseRaw>;
  try {
    parsed = parseRaw(argv);
  } catch (err) {
    throw badArguments(err instanceof Error ? err.message : String(err), err);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { help: true };

  const dryRun = values['dry-run'] === true;
  const packages = collectPackages(positionals, values.packages);
  const baseUrl = values['base-url'] === undefined ? undefined : parseBaseUrl(values['base-url']);
  if (baseUrl === undefined && !dryRun) throw badArguments('--base-url is required');
  if (values.out !== undefined && values.out.trim() === '') throw badArguments('--out must not be empty');
  if (values.out === undefined && !dryRun) throw badArguments('--out is required');
  if (values.lock !== undefined && values.lock.trim() === '') throw badArguments('--lock must not be empty');

  return {
    help: false,
    baseUrl,
    outDir: values.out,
    lock: values.lock,
    packages,
    dryRun,
    allowVersionMismatch: values['allow-version-mismatch'] === true,
    concurrency: parseConcurrency(values.concurrency),
  };
}

function parseRaw(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      'base-url': { type: 'string' },
      out: { type: 'string' },
      lock: { type: 'string' },
      packages: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean' },
      'allow-version-mismatch': { type: 'boolean' },
      concurrency: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Positional names and every `--packages a,b` value, in order, without repeats (case-insensitive). */
function collectPackages(positionals: string[], lists: string[] | undefined): string[] {
  const names = [...positionals, ...(lists ?? []).flatMap((list) => list.split(','))]
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 0) throw badArguments('no packages given');
  const invalid = names.filter((name) => !PACKAGE_NAME.test(name));
  if (invalid.length > 0) {
    throw badArguments(
      `not a package name: ${invalid.map((n) => JSON.stringify(n)).join(', ')} (give bare names; the lock pins the versions)`,
    );
  }
  const seen = new Set<string>();
  return names.filter((name) => {
    const key = name.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function parseBaseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw badArguments(`--base-url is not a URL: ${JSON.stringify(text)}`, err);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw badArguments(`--base-url must be an http or https URL, got ${url.protocol}`);
  }
  if (url.search !== '' || url.hash !== '') {
    throw badArguments('--base-url must not have a query or fragment: file names are appended to its path');
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function parseConcurrency(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CONCURRENCY;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1 || n > MAX_CONCURRENCY) {
    throw badArguments(
      `--concurrency must be an integer from 1 to ${MAX_CONCURRENCY}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}
