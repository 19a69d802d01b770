// Filesystem locations the sandbox and the snapshot builder need, and the Node flags that confine
// them (Node's permission model: read-only code and Pyodide files, no child processes, no addons,
// no inspector, no code generation from strings).
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

export const PYTHON_DIR = fileURLToPath(new URL('.', import.meta.url));
export const WORKER_PACKAGE_JSON = fileURLToPath(new URL('../../package.json', import.meta.url));
/** Pyodide's own files (wasm, stdlib, lock file), with a trailing slash as Pyodide wants. */
export const PYODIDE_DIR = `${dirname(require.resolve('pyodide/package.json'))}/`;
/**
 * The installed package folder that a bare import of `name` from `fromFile` resolves to, found the
 * way Node finds it, so that a nested install is allowed too.
 */
export function packageDir(name: string, fromFile: string): string {
  const entry = createRequire(fromFile).resolve(name);
  const marker = `${sep}node_modules${sep}${name}${sep}`;
  const at = entry.lastIndexOf(marker);
  if (at < 0) throw new Error(`package ${name} resolved outside a node_modules folder: ${entry}`);
  return entry.slice(0, at + marker.length - 1);
}

/**
 * The packages the sandbox process loads, and nothing else of node_modules: piscina (the thread
 * pool), pyodide, and ws, which pyodide imports at load time. Allowing the whole node_modules
 * folder, or the project root, would let code running in the sandbox read `.env.*`, `.data/`
 * (the dev JWT secret, the ledger database) and every other package's files.
 */
export const SANDBOX_PACKAGE_DIRS: readonly string[] = [
  packageDir('piscina', import.meta.url),
  packageDir('pyodide', import.meta.url),
  packageDir('ws', join(PYODIDE_DIR, 'package.json')),
];
export const PYODIDE_VERSION = (require('pyodide/package.json') as { version: string }).version;
export const BUNDLED_LOCK_FILE = join(PYODIDE_DIR, 'pyodide-lock.json');

export interface ConfinementOptions {
  readable: string[];
  writable: string[];
}

export function confinedNodeFlags(opts: ConfinementOptions): string[] {
  const flags = [
    '--permission',
    ...SANDBOX_PACKAGE_DIRS.map((dir) => `--allow-fs-read=${dir}`),
    `--allow-fs-read=${PYTHON_DIR}`,
    // Node reads the nearest package.json to learn that these .ts files are ES modules.
    `--allow-fs-read=${WORKER_PACKAGE_JSON}`,
    // piscina needs threads; the threads inherit every restriction of the process.
    '--allow-worker',
    // Closes the Function-constructor route: any JsProxy reaches `constructor.constructor`, which
    // would otherwise compile JavaScript from a string.
    '--disallow-code-generation-from-strings',
    // The permission model prints a warning for --allow-worker on every start; it is expected.
    '--disable-warning=SecurityWarning',
    // The inspector runs any code it is sent. No --allow-inspector already denies it; this also
    // keeps a SIGUSR1 (from anyone who may signal the worker's user) from even trying to open it.
    '--disable-sigusr1',
  ];
  for (const p of opts.readable) flags.push(`--allow-fs-read=${p}`);
  for (const p of opts.writable) flags.push(`--allow-fs-read=${p}`, `--allow-fs-write=${p}`);
  return flags;
}
