// pyodide-lock.json: reading it (file or URL), checking the fields this tool relies on, comparing it
// with the installed pyodide, and writing the filtered copy. Fields it does not know (`tool`,
// `unvendored_tests`, ...) are carried through untouched, so Pyodide reads the copy as it read the
// original. It must not import service code.
import { randomUUID } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PackagesError } from './errors.ts';

// ---------------------------------------------------------------------------------------- Types

export interface LockInfo {
  abi_version?: string;
  arch?: string;
  platform?: string;
  python?: string;
  version?: string;
  [field: string]: unknown;
}

export interface LockPackage {
  name: string;
  version: string;
  /** A bare file name, relative to the distribution (checked: no directory part). */
  file_name: string;
  install_dir: string;
  sha256: string;
  imports: string[];
  depends: string[];
  package_type?: string;
  [field: string]: unknown;
}

export interface PyodideLock {
  info: LockInfo;
  packages: Record<string, LockPackage>;
  [field: string]: unknown;
}

export const LOCK_FILE_NAME = 'pyodide-lock.json';

// ------------------------------------------------------------------------------------ Validation

const SHA256 = /^[0-9a-f]{64}$/i;
// MUST stay this strict: file_name becomes a path under --out, so a lock naming `../x` or `/etc/x`
// would otherwise write outside it. Locks with absolute URLs (micropip freeze) are refused too.
const BARE_FILE_NAME = /^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/;
const MAX_REPORTED_PROBLEMS = 10;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** Parses and checks a lock file's text; `source` names it in errors. */
export function parseLock(text: string, source: string): PyodideLock {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new PackagesError('bad_lock_file', `${source} is not JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const problems: string[] = [];
  if (!isLock(data, problems)) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : '';
    throw new PackagesError(
      'bad_lock_file',
      `${source} is not a usable Pyodide lock file:\n  ${shown.join('\n  ')}${more}`,
      { cause: { problems } },
    );
  }
  return data;
}

function isLock(data: unknown, problems: string[]): data is PyodideLock {
  problems.push(...lockProblems(data));
  return problems.length === 0;
}

/** Every problem of a parsed lock, as `path: message`; empty when it is usable. */
export function lockProblems(data: unknown): string[] {
  if (!isRecord(data)) return ['/: expected an object'];
  const problems: string[] = [];
  if (!isRecord(data.info)) problems.push('/info: expected an object');
  else {
    for (const field of ['abi_version', 'arch', 'platform', 'python', 'version']) {
      const value = data.info[field];
      if (value !== undefined && typeof value !== 'string')
        problems.push(`/info/${field}: expected a string`);
    }
  }
  if (!isRecord(data.packages)) {
    problems.push('/packages: expected an object');
    return problems;
  }
  if (Object.keys(data.packages).length === 0) problems.push('/packages: lists no package');
  for (const [key, entry] of Object.entries(data.packages)) {
    const at = `/packages/${key}`;
    if (!isRecord(entry)) {
      problems.push(`${at}: expected an object`);
      continue;
    }
    for (const field of ['name', 'version', 'install_dir']) {
      if (typeof entry[field] !== 'string' || entry[field] === '')
        problems.push(`${at}/${field}: expected a string`);
    }
    if (typeof entry.file_name !== 'string' || !BARE_FILE_NAME.test(entry.file_name)) {
      problems.push(`${at}/file_name: expected a bare file name, got ${JSON.stringify(entry.file_name)}`);
    }
    if (typeof entry.sha256 !== 'string' || !SHA256.test(entry.sha256)) {
      problems.push(`${at}/sha256: expected 64 hex digits`);
    }
    for (const field of ['imports', 'depends']) {
      if (!isStringArray(entry[field])) problems.push(`${at}/${field}: expected an array of strings`);
    }
  }
  return problems;
}

// --------------------------------------------------------------------------------------- Reading

/** Reads a lock from a file path or an http(s) URL. Every failure is a `bad_lock_file`. */
export async function readLock(source: string): Promise<PyodideLock> {
  return parseLock(await readLockText(source), source);
}

async function readLockText(source: string): Promise<string> {
  if (/^https?:\/\//i.test(source)) {
    let response: Response;
    try {
      response = await fetch(source);
    } catch (err) {
      throw new PackagesError('bad_lock_file', `cannot fetch ${source}: ${describeCause(err)}`, {
        cause: err,
      });
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new PackagesError('bad_lock_file', `cannot fetch ${source}: HTTP ${response.status}`);
    }
    return response.text();
  }
  try {
    return await readFile(source, 'utf8');
  } catch (err) {
    throw new PackagesError('bad_lock_file', `cannot read ${source}: ${describeCause(err)}`, { cause: err });
  }
}

/** The message of a fetch or fs error, with undici's underlying cause ("fetch failed" alone says nothing). */
export function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${err.message} (${code === undefined ? cause.message : `${code}: ${cause.message}`})`;
  }
  return err.message;
}

// ---------------------------------------------------------------------------- Installed pyodide

export interface InstalledPyodide {
  version: string;
  lockPath: string;
}

/** The pyodide npm package this repository runs, or undefined when it is not installed. */
export async function findInstalledPyodide(
  from: string = import.meta.url,
): Promise<InstalledPyodide | undefined> {
  let packageJsonPath: string;
  try {
    packageJsonPath = createRequire(from).resolve('pyodide/package.json');
  } catch {
    return undefined;
  }
  const manifest: unknown = JSON.parse(await readFile(packageJsonPath, 'utf8'));
  const version = isRecord(manifest) && typeof manifest.version === 'string' ? manifest.version : undefined;
  if (version === undefined) return undefined;
  return { version, lockPath: join(dirname(packageJsonPath), LOCK_FILE_NAME) };
}

/**
 * Why `lock` does not belong to the installed pyodide, or undefined when it does. Locks that carry
 * `info.version` are compared by version; 314.x locks do not, so then the ABI fields are compared
 * with the installed package's own lock (wheels built for another ABI do not load).
 */
export function describeVersionMismatch(
  lock: PyodideLock,
  installed: { version: string; info: LockInfo },
): string | undefined {
  if (lock.info.version !== undefined) {
    return lock.info.version === installed.version
      ? undefined
      : `the lock is for Pyodide ${lock.info.version}, the installed pyodide is ${installed.version}`;
  }
  const differences = (['abi_version', 'python', 'platform', 'arch'] as const)
    .filter((field) => lock.info[field] !== installed.info[field])
    .map(
      (field) => `${field} ${lock.info[field] ?? '(none)'} instead of ${installed.info[field] ?? '(none)'}`,
    );
  return differences.length === 0
    ? undefined
    : `the lock does not match the installed pyodide ${installed.version}: ${differences.join(', ')}`;
}

// ------------------------------------------------------------------------------------- Filtering

/** A copy of `lock` listing only `keys`; `info` and other top-level fields are kept as they are. */
export function filterLock(lock: PyodideLock, keys: Iterable<string>): PyodideLock {
  const packages: Record<string, LockPackage> = {};
  for (const key of [...keys].sort()) {
    const entry = lock.packages[key];
    if (entry === undefined) throw new Error(`filterLock: ${key} is not in the lock`);
    packages[key] = entry;
  }
  return { ...lock, packages };
}

// --------------------------------------------------------------------------------------- Writing

/** Writes `<dir>/pyodide-lock.json` through a temp file and a rename, so a reader never sees half of it. */
export async function writeLockFile(dir: string, lock: PyodideLock): Promise<string> {
  const path = join(dir, LOCK_FILE_NAME);
  const temp = join(dir, `.${LOCK_FILE_NAME}.${process.pid}-${randomUUID().slice(0, 8)}.part`);
  try {
    const file = await open(temp, 'wx');
    try {
      await file.writeFile(`${JSON.stringify(lock, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new PackagesError('write_failed', `cannot write ${path}: ${describeCause(err)}`, { cause: err });
  }
  return path;
}
