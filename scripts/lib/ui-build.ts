// Builds the operator dashboard (services/dashboard) with Vite: behind `npm run build:ui`, the
// `prepare` step of `npm ci`, `npm start` (only when the build is missing or older than its
// sources) and the browser tests (into a folder of their own). Vite is a devDependency, so it is
// imported only when a build runs: where devDependencies are omitted, callers skip with a line.
// Imports no service code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export const DASHBOARD_DIR = resolve(import.meta.dirname, '../../services/dashboard');
/** The gateway's default NEUROAGENT_UI__DIR. */
export const DASHBOARD_DIST = join(DASHBOARD_DIR, 'dist');
const SOURCES = ['index.html', 'vite.config.ts', 'tsconfig.json', 'src', 'public'];

/** True when `vite` resolves from here (it does not after `npm ci --omit=dev`). */
export function viteAvailable(): boolean {
  try {
    import.meta.resolve('vite');
    return true;
  } catch {
    return false;
  }
}

function newestMtimeMs(path: string): number {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs; // a deleted file leaves only its folder's mtime behind
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtimeMs(join(path, name)));
  return newest;
}

/** 'missing' without outDir/index.html, 'stale' when a source is newer than it, else 'fresh'. */
export function uiBuildState(outDir: string = DASHBOARD_DIST): 'missing' | 'stale' | 'fresh' {
  const index = join(outDir, 'index.html');
  if (!existsSync(index)) return 'missing';
  const sources = Math.max(...SOURCES.map((s) => newestMtimeMs(join(DASHBOARD_DIR, s))));
  return sources > statSync(index).mtimeMs ? 'stale' : 'fresh';
}

export interface BuildUiOptions {
  outDir?: string;
  /** Vite's own output: 'warn' keeps a build quiet unless something is wrong. */
  logLevel?: 'info' | 'warn' | 'error' | 'silent';
}

/**
 * Builds into a sibling folder, then swaps it in, so a running gateway never serves an index.html
 * whose assets are not written yet. Resolves with the build's duration in ms.
 */
export async function buildUi(opts: BuildUiOptions = {}): Promise<number> {
  const outDir = resolve(opts.outDir ?? DASHBOARD_DIST);
  const staging = join(dirname(outDir), `.${outDir.split(/[\\/]/).at(-1)}.building-${process.pid}`);
  const started = performance.now();
  const { build } = await import('vite');
  try {
    await build({
      root: DASHBOARD_DIR,
      configFile: join(DASHBOARD_DIR, 'vite.config.ts'),
      logLevel: opts.logLevel ?? 'warn',
      build: { outDir: staging, emptyOutDir: true },
    });
    await rm(outDir, { recursive: true, force: true });
    await rename(staging, outDir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return Math.round(performance.now() - started);
}
