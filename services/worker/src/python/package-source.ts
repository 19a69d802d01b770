// The Python package source (TASKS_PYTHON__PACKAGES_URL): a local directory or an http(s) base URL
// holding pyodide-lock.json and the files it names. Self-contained on purpose: the confined
// sandbox process and snapshot builder import it, and they may read nothing outside this folder
// and node_modules.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PackageSource } from './protocol.ts';

export function resolvePackageSource(value: string, cwd: string = process.cwd()): PackageSource | null {
  const trimmed = value.trim();
  if (trimmed === '') return null;
  if (/^https?:\/\//i.test(trimmed))
    return { base: trimmed.endsWith('/') ? trimmed : `${trimmed}/`, isUrl: true };
  const dir = resolve(cwd, trimmed);
  return { base: `${dir}/`, isUrl: false };
}

export interface LockFile {
  info: Record<string, unknown>;
  packages: Record<string, { name: string; imports?: string[]; depends?: string[]; file_name: string }>;
}

export async function loadLockFile(
  source: PackageSource | null,
  bundledLockPath: string,
  timeoutMs = 10_000,
): Promise<LockFile> {
  let text: string;
  const where = source ? `${source.base}pyodide-lock.json` : bundledLockPath;
  try {
    if (source?.isUrl) {
      const res = await fetch(where, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      text = await res.text();
    } else {
      text = readFileSync(where, 'utf8');
    }
  } catch (err) {
    throw new Error(
      `cannot read the Pyodide lock file ${where}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const lock = JSON.parse(text) as Partial<LockFile>;
  if (!lock || typeof lock.packages !== 'object' || lock.packages === null || typeof lock.info !== 'object') {
    throw new Error(`${where} is not a Pyodide lock file (no "info" and "packages")`);
  }
  return lock as LockFile;
}

/** Maps a package or import name (case-insensitive, `sklearn` → `scikit-learn`) to its lock entry name. */
export function lockPackageName(lock: LockFile, wanted: string): string | null {
  const w = wanted.toLowerCase().replace(/_/g, '-');
  for (const [key, pkg] of Object.entries(lock.packages)) {
    if (key.toLowerCase() === w || pkg.name.toLowerCase().replace(/_/g, '-') === w) return key;
  }
  for (const [key, pkg] of Object.entries(lock.packages)) {
    if ((pkg.imports ?? []).includes(wanted)) return key;
  }
  return null;
}
