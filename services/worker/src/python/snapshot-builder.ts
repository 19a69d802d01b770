// Child process that builds a Pyodide memory snapshot: the interpreter after start-up, with the
// common standard library and the configured preload packages imported. Forked by snapshot.ts
// under the same confinement as the sandbox (plus write access to the snapshot folder only). It
// never runs user code. Arguments: one JSON object (SnapshotBuildRequest) in argv[2].
import { renameSync, writeFileSync } from 'node:fs';
import { loadPyodide } from 'pyodide';
import { pyodideOptions } from './interpreter.ts';
import { loadLockFile } from './package-source.ts';
import type { PackageSource } from './protocol.ts';
import {
  blockChildProcesses,
  blockSockets,
  createTimerScope,
  serveConstantsBinding,
} from './thread-guards.ts';

export interface SnapshotBuildRequest {
  indexURL: string;
  bundledLockPath: string;
  packages: PackageSource | null;
  packageCacheDir: string | null;
  preload: string[];
  stdlib: string[];
  outPath: string;
}

const req = JSON.parse(process.argv[2] ?? 'null') as SnapshotBuildRequest;
serveConstantsBinding();
blockChildProcesses();
blockSockets(req.indexURL);

const lockFile = await loadLockFile(req.packages, req.bundledLockPath);
const options = pyodideOptions({ ...req, lockFile }, createTimerScope().globals);
options._makeSnapshot = true;
const pyodide = await loadPyodide(options);
if (req.preload.length > 0) {
  const errors: string[] = [];
  await pyodide.loadPackage(req.preload, {
    messageCallback: () => {},
    errorCallback: (m: string) => errors.push(m),
  });
  const failed = req.preload.filter((p) => !(p in pyodide.loadedPackages));
  if (failed.length > 0) {
    process.stderr.write(`preload failed for ${failed.join(', ')}: ${errors.join('; ')}\n`);
    process.exit(3);
  }
}
const imports = [...req.stdlib, ...req.preload.flatMap((p) => lockFile.packages[p]?.imports ?? [])];
for (const name of imports) pyodide.runPython(`import ${name}`);
// Pyodide refuses to snapshot a non-empty loadedPackages table (it checks it against `{}`). Empty
// it for the snapshot and hand it to the threads, which put it back after every restore, so the
// loader knows these packages (and their dependencies) are already installed.
const loadedPackages: Record<string, string> = { ...pyodide.loadedPackages };
for (const name of Object.keys(loadedPackages))
  delete (pyodide.loadedPackages as Record<string, string>)[name];
const bytes = (pyodide as unknown as { makeMemorySnapshot(): Uint8Array }).makeMemorySnapshot();
const tmp = `${req.outPath}.${process.pid}.tmp`;
writeFileSync(tmp, bytes);
renameSync(tmp, req.outPath);
process.stdout.write(`${JSON.stringify({ bytes: bytes.byteLength, loadedPackages })}\n`);
