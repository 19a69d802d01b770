// Turns the names an operator typed into lock entries plus their transitive `depends`. Names match
// the way pip compares them (PEP 503: case-insensitive, `-`, `_` and `.` alike) and, failing that,
// by import name (`sklearn`). Pure: works on a parsed lock only.
import { PackagesError } from './errors.ts';
import type { LockPackage, PyodideLock } from './lock.ts';

export interface ResolvedPackage {
  /** The key of the package in the lock's `packages` map. */
  key: string;
  entry: LockPackage;
  /** True when the operator named it, false when it is only a dependency. */
  requested: boolean;
  /** The first package found to depend on it (undefined when requested). */
  requiredBy: string | undefined;
}

/** PEP 503 normalisation: `Pydantic_Core` and `pydantic-core` are the same project. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

interface PackageIndex {
  byName: Map<string, string>;
  byImport: Map<string, string[]>;
}

// A WeakMap so that resolving many names against one lock indexes it once.
const indexes = new WeakMap<PyodideLock, PackageIndex>();

function indexOf(lock: PyodideLock): PackageIndex {
  const cached = indexes.get(lock);
  if (cached !== undefined) return cached;
  const byName = new Map<string, string>();
  const byImport = new Map<string, string[]>();
  for (const [key, entry] of Object.entries(lock.packages)) {
    byName.set(normalizeName(key), key);
    if (!byName.has(normalizeName(entry.name))) byName.set(normalizeName(entry.name), key);
    for (const name of entry.imports) {
      const keys = byImport.get(name.toLowerCase()) ?? [];
      keys.push(key);
      byImport.set(name.toLowerCase(), keys);
    }
  }
  const index = { byName, byImport };
  indexes.set(lock, index);
  return index;
}

/**
 * The lock key `name` refers to: a package name first, an import name second. Throws
 * `unknown_package` (with close names) or `ambiguous_package`.
 */
export function findPackage(lock: PyodideLock, name: string): string {
  const found = lookUp(lock, name);
  if (typeof found === 'string') return found;
  throw found;
}

function lookUp(lock: PyodideLock, name: string): string | PackagesError {
  const index = indexOf(lock);
  const byName = index.byName.get(normalizeName(name));
  if (byName !== undefined) return byName;
  const byImport = index.byImport.get(name.toLowerCase()) ?? [];
  if (byImport.length === 1) return byImport[0]!;
  if (byImport.length > 1) {
    return new PackagesError(
      'ambiguous_package',
      `"${name}" is imported from several packages (${byImport.join(', ')}): name the package`,
    );
  }
  const suggestions = suggestNames(lock, name);
  const hint =
    suggestions.length > 0
      ? `; did you mean ${suggestions.join(', ')}?`
      : ' (only packages built for this Pyodide distribution can be fetched)';
  return new PackagesError(
    'unknown_package',
    `"${name}" is neither a package nor an import in the lock${hint}`,
  );
}

/**
 * Resolves `names` and everything they depend on, sorted by key. Reports every unknown name at
 * once; a `depends` entry the lock does not list is a `bad_lock_file`.
 */
export function resolvePackages(lock: PyodideLock, names: readonly string[]): ResolvedPackage[] {
  const index = indexOf(lock);
  const resolved = new Map<string, ResolvedPackage>();
  const unknown: PackagesError[] = [];
  const queue: string[] = [];

  for (const name of names) {
    const found = lookUp(lock, name);
    if (found instanceof PackagesError) {
      unknown.push(found);
      continue;
    }
    if (resolved.has(found)) continue;
    resolved.set(found, { key: found, entry: lock.packages[found]!, requested: true, requiredBy: undefined });
    queue.push(found);
  }
  if (unknown.length === 1) throw unknown[0];
  if (unknown.length > 1) {
    const code = unknown.some((err) => err.code === 'unknown_package')
      ? 'unknown_package'
      : 'ambiguous_package';
    throw new PackagesError(code, unknown.map((err) => err.message).join('\n'), { cause: unknown });
  }

  // Dependencies are looked up by package name only: an import-name fallback here would hide a broken lock.
  for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
    for (const dependency of lock.packages[key]!.depends) {
      const depKey = index.byName.get(normalizeName(dependency));
      if (depKey === undefined) {
        throw new PackagesError(
          'bad_lock_file',
          `${key} depends on "${dependency}", which the lock file does not list`,
        );
      }
      if (resolved.has(depKey)) continue;
      resolved.set(depKey, { key: depKey, entry: lock.packages[depKey]!, requested: false, requiredBy: key });
      queue.push(depKey);
    }
  }
  return [...resolved.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

// ----------------------------------------------------------------------------------- Suggestions

/** Up to `limit` package keys whose name or import is close to `name` (edit distance or prefix). */
export function suggestNames(lock: PyodideLock, name: string, limit = 5): string[] {
  const wanted = normalizeName(name);
  const maxDistance = Math.max(1, Math.floor(wanted.length / 3));
  const wantsTests = /-tests?$/.test(wanted);
  const scored = new Map<string, number>();
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!wantsTests && key.endsWith('-tests')) continue;
    for (const candidate of [normalizeName(key), ...entry.imports.map(normalizeName)]) {
      const prefix =
        (wanted.length >= 3 && candidate.startsWith(wanted)) ||
        (candidate.length >= 4 && wanted.startsWith(candidate));
      const distance = prefix ? 0.5 : editDistance(wanted, candidate);
      if (distance <= maxDistance && distance < (scored.get(key) ?? Number.POSITIVE_INFINITY)) {
        scored.set(key, distance);
      }
    }
  }
  return [...scored]
    .sort(([a, da], [b, db]) => da - db || (a < b ? -1 : 1))
    .slice(0, limit)
    .map(([key]) => key);
}

/** Edit distance counting an insertion, deletion, substitution or swap of neighbours as one (OSA). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      row.push(best);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
