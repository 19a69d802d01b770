// Builds the sandbox's configuration from the worker's, building or reusing the snapshot first.
import { resolve } from 'node:path';
import type { Logger } from '@neuroagent/platform';
import type { WorkerConfig } from '../config.ts';
import { resolvePackageSource } from './package-source.ts';
import type { SandboxConfig } from './protocol.ts';
import { BUNDLED_LOCK_FILE, PYODIDE_DIR } from './sandbox-paths.ts';
import { ensureSnapshot, type SnapshotOptions } from './snapshot.ts';

const MB = 1024 * 1024;

type PythonConfig = Readonly<WorkerConfig['python']>;

/** The package source and, for URL sources, the folder its downloads are cached in. */
export function resolvePackages(py: PythonConfig) {
  const packages = resolvePackageSource(py.packages_url);
  if (py.preload.length > 0 && !packages) {
    throw new Error('TASKS_PYTHON__PRELOAD needs a package source: set TASKS_PYTHON__PACKAGES_URL');
  }
  return { packages, packageCacheDir: packages?.isUrl ? `${resolve(py.package_cache_dir)}/` : null };
}

export function snapshotOptions(py: PythonConfig, log: Logger): SnapshotOptions {
  return {
    dir: py.snapshot_dir,
    preload: py.preload,
    ...resolvePackages(py),
    timeoutMs: py.snapshot_build_timeout_s * 1000,
    log,
  };
}

export async function buildSandboxConfig(
  config: Readonly<WorkerConfig>,
  log: Logger,
): Promise<SandboxConfig> {
  const py = config.python;
  const { packages, packageCacheDir } = resolvePackages(py);
  const snapshot = py.snapshot ? await ensureSnapshot(snapshotOptions(py, log)) : null;
  return {
    threads: py.threads,
    timeoutMs: Math.round(py.timeout_s * 1000),
    killGraceMs: py.kill_grace_ms,
    maxOutputBytes: py.max_output_kb * 1024,
    maxReturnBytes: py.max_return_kb * 1024,
    memoryCapBytes: py.memory_mb * MB,
    recycleAfterRuns: py.recycle_after_runs,
    reuseInterpreter: py.reuse_interpreter,
    isolation: py.isolation,
    resetMaxGrowthBytes: py.reset_max_growth_mb * MB,
    spareInterpreter: py.spare_interpreter,
    snapshotPath: snapshot?.path ?? null,
    snapshotPackages: snapshot?.loadedPackages ?? {},
    packages,
    packageCacheDir,
    installTimeoutMs: Math.round(py.install_timeout_s * 1000),
    indexURL: PYODIDE_DIR,
    bundledLockPath: BUNDLED_LOCK_FILE,
    allowNetwork: py.allow_network,
    artifacts: {
      maxFiles: py.max_artifacts,
      maxFileBytes: py.max_artifact_mb * MB,
      maxTotalBytes: py.max_artifacts_total_mb * MB,
    },
  };
}
