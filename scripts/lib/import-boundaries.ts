// Import rules between the packages: the gateway and the workers never import each
// other; the gateway (and the platform and contracts it loads) never loads Pyodide or piscina;
// contracts is a leaf. The rules are checked on the source text, for static and dynamic imports.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export interface Violation {
  file: string;
  specifier: string;
  rule: string;
}

interface Rule {
  name: string;
  /** Folder (relative to the root) whose files the rule applies to. */
  from: string;
  /** Package names, or prefixes of package names, that may not be imported. */
  packages: string[];
  /** Folders (relative to the root) that relative imports may not reach into. */
  folders: string[];
}

const SANDBOX_PACKAGES = ['pyodide', 'piscina'];

export const RULES: Rule[] = [
  {
    name: 'the gateway never imports the worker, Pyodide or piscina',
    from: 'services/gateway',
    packages: ['@neuroagent/worker', ...SANDBOX_PACKAGES],
    folders: ['services/worker'],
  },
  {
    name: 'the worker never imports the gateway',
    from: 'services/worker',
    packages: ['@neuroagent/gateway'],
    folders: ['services/gateway'],
  },
  {
    name: 'platform is shared: it imports neither service nor the sandbox packages',
    from: 'services/platform',
    packages: ['@neuroagent/gateway', '@neuroagent/worker', ...SANDBOX_PACKAGES],
    folders: ['services/gateway', 'services/worker'],
  },
  {
    name: 'contracts is a leaf: TypeBox only',
    from: 'contracts',
    packages: ['@neuroagent/', ...SANDBOX_PACKAGES],
    folders: ['services'],
  },
];

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'"`;]*?\sfrom\s+)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

export function importSpecifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec) out.push(spec);
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    if (name === 'node_modules' || name.startsWith('.')) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(c|m)?(t|j)s$/.test(name) ? [path] : [];
  });
}

function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder + sep);
}

export function findBoundaryViolations(root: string): Violation[] {
  const violations: Violation[] = [];
  for (const rule of RULES) {
    for (const file of sourceFiles(join(root, rule.from))) {
      for (const specifier of importSpecifiers(readFileSync(file, 'utf8'))) {
        const rel = relative(root, file);
        if (specifier.startsWith('.')) {
          const target = resolve(dirname(file), specifier);
          if (rule.folders.some((f) => isInside(target, join(root, f))))
            violations.push({ file: rel, specifier, rule: rule.name });
        } else if (
          rule.packages.some((p) => specifier === p || specifier.startsWith(p.endsWith('/') ? p : `${p}/`))
        ) {
          violations.push({ file: rel, specifier, rule: rule.name });
        }
      }
    }
  }
  return violations;
}

/** The gateway's package.json must not even depend on the sandbox packages or the worker. */
export function findDependencyViolations(root: string): Violation[] {
  const pkg = JSON.parse(readFileSync(join(root, 'services/gateway/package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  return Object.keys(pkg.dependencies ?? {})
    .filter((d) => [...SANDBOX_PACKAGES, '@neuroagent/worker'].includes(d))
    .map((d) => ({ file: 'services/gateway/package.json', specifier: d, rule: 'gateway dependencies' }));
}

/** Folders whose modules may not form an import cycle, type-only imports included. */
export const ACYCLIC_FOLDERS = ['contracts', 'services', 'scripts'];

/**
 * Every cycle of relative imports among the source files under `folders`, each as the list of files
 * (relative to `root`) in import order, starting and ending at the same file. Type-only imports
 * count: a cycle of types still means two modules that cannot be understood one without the other.
 */
export function findImportCycles(root: string, folders: readonly string[] = ACYCLIC_FOLDERS): string[][] {
  const graph = new Map<string, string[]>();
  for (const folder of folders) {
    for (const file of sourceFiles(join(root, folder))) {
      const targets = importSpecifiers(readFileSync(file, 'utf8'))
        .filter((s) => s.startsWith('.'))
        .map((s) => resolve(dirname(file), s));
      graph.set(file, targets);
    }
  }
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      const s = state.get(next);
      if (s === 'open') cycles.push([...path.slice(path.indexOf(next)), next].map((f) => relative(root, f)));
      else if (s === undefined) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}
