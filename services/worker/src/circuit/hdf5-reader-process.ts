// Entry point of the confined HDF5 reader: a child process forked by hdf5-confined.ts under Node's
// permission model, with an empty environment, that may read the circuit folder and its own code
// only. It answers one request over IPC and exits. libhdf5 parses attacker-written bytes here, so
// a parser bug or a file that points elsewhere reaches nothing worth stealing.
// Must not import @neuroagent/platform or anything that holds a connection or a secret.
import fs, { constants as fsConstants, realpathSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import {
  Hdf5ContentError,
  listPopulations,
  loadH5wasm,
  readPopulation,
  withNodesFile,
} from './hdf5-columns.ts';
import type { ReaderReply, ReaderRequest } from './hdf5-protocol.ts';

function reply(msg: ReaderReply): void {
  process.send?.(msg, undefined, {}, () => process.exit(0));
}

/**
 * libhdf5 opens further files for external raw storage, external links and virtual datasets.
 * h5wasm's NODERAWFS opens them through this module's `openSync`, so every path but the nodes
 * file is refused here, before a byte of it is read. The permission model is the second layer.
 */
function confineOpens(nodesFile: string): { foreign: string[] } {
  const seen = { foreign: [] as string[] };
  const original = fs.openSync;
  const guarded = (file: fs.PathLike, ...rest: unknown[]) => {
    let real: string;
    try {
      real = realpathSync(String(file));
    } catch {
      real = String(file);
    }
    if (real !== nodesFile) {
      seen.foreign.push(String(file));
      const err = new Error(`EACCES: the HDF5 reader may only open the nodes file`) as NodeJS.ErrnoException;
      err.code = 'EACCES';
      throw err;
    }
    return (original as (...a: unknown[]) => number)(file, ...rest);
  };
  fs.openSync = guarded as typeof fs.openSync;
  return seen;
}

/** Emscripten's NODERAWFS start-up asks for `process.binding('constants')`, which the permission model denies. */
const proc = process as unknown as { binding(name: string): unknown };
const binding = proc.binding.bind(process);
proc.binding = (name: string) =>
  name === 'constants' ? { fs: fsConstants, os: osConstants } : binding(name);

async function handle(req: ReaderRequest): Promise<ReaderReply> {
  // h5wasm loads its Wasm before the guard goes up; afterwards only the nodes file opens.
  await loadH5wasm();
  const seen = confineOpens(req.nodesFile);
  try {
    const value = await withNodesFile(req.nodesFile, req.shown, (h5, file) =>
      req.op === 'list'
        ? listPopulations(h5, file)
        : readPopulation(h5, file, req.population, req.shown, { maxElements: req.maxElements }),
    );
    if (seen.foreign.length > 0) throw foreignFile(req.shown);
    return { ok: true, value };
  } catch (err) {
    // A refused open surfaces as whatever libhdf5 makes of it; name the real cause instead.
    const e = seen.foreign.length > 0 ? foreignFile(req.shown) : err;
    if (e instanceof Hdf5ContentError) return { ok: false, code: e.code, message: e.message };
    return { ok: false, code: 'bad_archive', message: `${req.shown} cannot be read` };
  }
}

function foreignFile(shown: string): Hdf5ContentError {
  return new Hdf5ContentError(
    'bad_archive',
    `${shown} refers to another file (external storage, an external link or a virtual dataset); not allowed`,
  );
}

process.once('message', (req: ReaderRequest) => {
  handle(req).then(reply, () => {
    reply({ ok: false, code: 'bad_archive', message: 'the HDF5 file cannot be read' });
  });
});
process.on('disconnect', () => process.exit(0));
