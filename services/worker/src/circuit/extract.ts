// Step 2 of circuit_q (docs/circuit-analysis.md): unpack circuit.gz (a gzip'd tar) safely. The original called
// extractall() with no member filter; here a first pass lists every entry without writing anything
// and refuses the whole archive on any unsafe entry, and only then a second pass extracts it into a
// fresh temp dir that is renamed into place. Leaf module: node builtins, tar and platform errors only.
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InfrastructureError, TaskFailedError } from '@neuroagent/platform';
import { extract, list, type Parser, ReadEntry } from 'tar';

export interface ExtractOptions {
  /** Largest sum of file sizes; more gives `too_large`. */
  maxBytes: number;
  /** Most entries (files and directories); more gives `bad_archive`. */
  maxEntries: number;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
  /** The single top-level folder of the archive, or '' when there is none. */
  root: string;
}

// Only plain files and directories. Links are refused outright, even ones that stay inside the
// extraction dir: SONATA circuits do not need them, and "inside" links are where tar exploits live
// (a link to a dir, then a file written through it). Devices, FIFOs and anything else are refused.
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const DIR_TYPES = new Set(['Directory']);

/** Tar framing allowed per entry on top of its content (header, pax header, padding), and in all. */
const ENTRY_OVERHEAD_BYTES = 8192;
const ARCHIVE_OVERHEAD_BYTES = 1 << 20;

// ------------------------------------------------------------------ entry checks

/**
 * Linux's NAME_MAX and PATH_MAX. A longer name would fail with ENAMETOOLONG while writing, which
 * looks like our own disk failing (retryable): it is the archive's fault, so it is refused up front.
 */
export const MAX_SEGMENT_BYTES = 255;
export const MAX_PATH_BYTES = 4096;

/** Why an entry is unsafe, or null. Pure string checks, run in both passes. */
export function entryProblem(entry: Pick<ReadEntry, 'path' | 'type' | 'linkpath'>): string | null {
  const p = entry.path;
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) return `has a path over ${MAX_PATH_BYTES} bytes`;
  if (p.split('/').some((seg) => Buffer.byteLength(seg) > MAX_SEGMENT_BYTES)) {
    return `has a path segment over ${MAX_SEGMENT_BYTES} bytes`;
  }
  // Defence in depth: tar v7 already cuts pax values at a NUL, and ustar fields end at one.
  if (p.includes('\0')) return 'has a NUL byte in its path';
  if (p.includes('\\')) return 'has a backslash in its path';
  if (p.startsWith('/')) return 'has an absolute path';
  if (/^[A-Za-z]:/.test(p)) return 'has a drive letter';
  if (p.split('/').includes('..')) return "has a '..' path segment";
  if (entry.type === 'Link' || entry.type === 'SymbolicLink')
    return `is a ${linkName(entry)} (links are refused)`;
  if (!FILE_TYPES.has(entry.type) && !DIR_TYPES.has(entry.type))
    return `has the unsupported type ${entry.type}`;
  if (entry.linkpath) return 'carries a link target';
  if (FILE_TYPES.has(entry.type) && segments(p).length === 0) return 'is a file without a name';
  return null;
}

function linkName(entry: Pick<ReadEntry, 'type' | 'linkpath'>): string {
  const kind = entry.type === 'Link' ? 'hard link' : 'symlink';
  return `${kind} to ${JSON.stringify(String(entry.linkpath ?? '').slice(0, 200))}`;
}

function segments(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}

function badArchive(message: string, cause?: unknown): TaskFailedError {
  return new TaskFailedError('bad_archive', message, cause === undefined ? {} : { cause });
}

/** Counts entries and bytes against the limits and finds the top-level folder. */
function createTally(opts: ExtractOptions) {
  let entries = 0;
  let bytes = 0;
  const tops = new Map<string, boolean>(); // top-level name → is a directory
  // Every path seen, as a file or as a directory (explicit or implied by a deeper entry): a name
  // that is both would fail with ENOTDIR or EISDIR while writing, which is the archive's fault.
  const kinds = new Map<string, 'file' | 'dir'>();
  const clash = (entry: ReadEntry): string | null => {
    const parts = segments(entry.path);
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (kinds.get(dir) === 'file') return `uses the file ${JSON.stringify(dir.slice(0, 200))} as a folder`;
      kinds.set(dir, 'dir');
    }
    const self = parts.join('/');
    if (self === '') return null;
    const kind = FILE_TYPES.has(entry.type) ? 'file' : 'dir';
    const before = kinds.get(self);
    if (before !== undefined && before !== kind) return `is both a file and a folder`;
    kinds.set(self, kind);
    return null;
  };
  return {
    add(entry: ReadEntry): TaskFailedError | null {
      const problem = entryProblem(entry) ?? clash(entry);
      if (problem !== null) {
        return badArchive(`archive entry ${JSON.stringify(entry.path.slice(0, 200))} ${problem}`);
      }
      entries += 1;
      if (entries > opts.maxEntries)
        return badArchive(`the archive has more than ${opts.maxEntries} entries`);
      if (FILE_TYPES.has(entry.type)) {
        bytes += entry.size;
        if (bytes > opts.maxBytes) {
          return new TaskFailedError('too_large', `the archive holds more than ${opts.maxBytes} bytes`);
        }
      }
      const parts = segments(entry.path);
      const top = parts[0];
      if (top !== undefined) {
        tops.set(top, (tops.get(top) ?? false) || parts.length > 1 || DIR_TYPES.has(entry.type));
      }
      return null;
    },
    result(): ExtractResult {
      const [only] = tops;
      const root = tops.size === 1 && only !== undefined && only[1] ? only[0] : '';
      return { entries, bytes, root };
    },
  };
}

// ------------------------------------------------------------------ feeding tar

/**
 * Pipes the decompressed archive into `sink`. Gunzip runs here, not in tar, so the decompressed
 * stream is metered: a gzip bomb or an endless tail after the tar trailer stops at `budget` bytes.
 * Returns a function that stops reading.
 */
function feed(archivePath: string, sink: Parser, budget: number, onError: (err: Error) => void): () => void {
  let seen = 0;
  let head: Buffer | null = Buffer.alloc(0);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > budget) {
        return callback(new TaskFailedError('too_large', `the archive expands to more than ${budget} bytes`));
      }
      if (head !== null) {
        // tar would transparently gunzip a second layer, past this meter: refuse it instead.
        head = Buffer.concat([head, chunk]);
        if (head.length >= 2) {
          if (head[0] === 0x1f && head[1] === 0x8b)
            return callback(badArchive('the archive is gzipped twice'));
          head = null;
        }
      }
      callback(null, chunk);
    },
  });
  const source = createReadStream(archivePath);
  pipeline(source, createGunzip(), meter, (err) => {
    if (err) onError(streamError(err));
  });
  meter.pipe(sink as unknown as NodeJS.WritableStream);
  return () => {
    meter.unpipe();
    source.destroy();
    meter.destroy();
  };
}

function streamError(err: Error): Error {
  if (err instanceof TaskFailedError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code.startsWith('Z_')) return badArchive(`the archive is not valid gzip: ${err.message}`, err);
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return badArchive('the archive stream was cut off', err);
  return new InfrastructureError('disk_read_failed', `cannot read the archive: ${err.message}`, {
    cause: err,
  });
}

function budgetOf(opts: ExtractOptions): number {
  return opts.maxBytes + (opts.maxEntries + 1) * ENTRY_OVERHEAD_BYTES + ARCHIVE_OVERHEAD_BYTES;
}

const TAR_FORMAT = { strict: true, brotli: false, zstd: false } as const;

// ------------------------------------------------------------------ pass 1: list

/** Reads every header and writes nothing; rejects on the first unsafe entry or broken framing. */
function scan(archivePath: string, opts: ExtractOptions): Promise<ExtractResult> {
  return new Promise((resolve, reject) => {
    const tally = createTally(opts);
    const filtered = new WeakSet<ReadEntry>();
    let stop = () => {};
    let settled = false;
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      stop();
      if (err) reject(err);
      else resolve(tally.result());
    };
    const parser = list({
      ...TAR_FORMAT,
      filter: (_path, entry) => {
        if (entry instanceof ReadEntry) {
          filtered.add(entry);
          const err = tally.add(entry);
          if (err) settle(err);
        }
        return false; // listing only: every body is skipped unread
      },
    });
    // tar marks entries of unknown types ignored before the filter sees them; they land here.
    parser.on('ignoredEntry', (entry: ReadEntry) => {
      if (filtered.has(entry)) return;
      const what = entry.meta ? 'an oversized extended header' : `the unsupported type ${entry.type}`;
      settle(badArchive(`archive entry ${JSON.stringify(String(entry.path).slice(0, 200))} has ${what}`));
    });
    parser.on('error', (err: Error) =>
      settle(badArchive(`the archive is not a valid tar: ${err.message}`, err)),
    );
    parser.on('end', () => settle(null));
    stop = feed(archivePath, parser, budgetOf(opts), settle);
  });
}

// ------------------------------------------------------------------ pass 2: extract

/** Extracts into `dir`, which MUST be a fresh empty directory; resolves once tar has closed every file. */
function unpackInto(archivePath: string, dir: string, opts: ExtractOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const tally = createTally(opts);
    let problem: Error | undefined;
    const unpack = extract({
      ...TAR_FORMAT,
      cwd: dir,
      preserveOwner: false, // tar's default is true when running as root
      dmode: 0o755,
      fmode: 0o644,
      filter: (_path, entry) => {
        if (problem !== undefined || !(entry instanceof ReadEntry)) return false;
        // MUST re-check here: the file could have changed since pass 1 listed it.
        const err = tally.add(entry);
        if (err) {
          problem = err;
          return false;
        }
        entry.mode = DIR_TYPES.has(entry.type) ? 0o755 : 0o644;
        return true;
      },
    });
    // In strict mode tar reports each failed entry and carries on; remember the first and wait
    // for 'close', so no write is still in flight when the caller removes the temp dir.
    unpack.on('error', (err: NodeJS.ErrnoException) => {
      problem ??= isFileSystemError(err)
        ? new InfrastructureError('disk_write_failed', `cannot extract the archive: ${err.message}`, {
            cause: err,
          })
        : badArchive(`the archive cannot be extracted: ${err.message}`, err);
    });
    unpack.on('close', () => (problem === undefined ? resolve() : reject(problem)));
    const stop = feed(archivePath, unpack, budgetOf(opts), (err) => {
      problem ??= err;
      stop();
      // Ends tar's input: it finishes (truncates) the current entry and then emits 'close'.
      unpack.end();
    });
  });
}

function isFileSystemError(err: NodeJS.ErrnoException): boolean {
  return typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code) && err.syscall !== undefined;
}

// ------------------------------------------------------------------ entry point

/**
 * Unpacks the gzip'd tar at `archivePath` into `destDir` (which must not exist yet). Nothing is
 * written before every entry has been checked, and nothing outside a temp dir next to `destDir`;
 * on failure the temp dir is removed and `destDir` is not created. Throws TaskFailedError
 * `bad_archive` / `too_large`, or InfrastructureError when our own disk fails.
 */
export async function extractArchive(
  archivePath: string,
  destDir: string,
  opts: ExtractOptions,
): Promise<ExtractResult> {
  const result = await scan(archivePath, opts);
  const parent = dirname(destDir);
  let temp: string;
  try {
    await mkdir(parent, { recursive: true });
    temp = await mkdtemp(join(parent, `.${basename(destDir)}.extract-`));
  } catch (err) {
    throw new InfrastructureError('disk_write_failed', `cannot create a temp dir in ${parent}`, {
      cause: err,
    });
  }
  try {
    await unpackInto(archivePath, temp, opts);
    await chmod(temp, 0o755);
    await rename(temp, destDir);
  } catch (err) {
    await rm(temp, { recursive: true, force: true, maxRetries: 3 });
    if (err instanceof TaskFailedError || err instanceof InfrastructureError) throw err;
    throw new InfrastructureError('disk_write_failed', `cannot move the extracted archive to ${destDir}`, {
      cause: err,
    });
  }
  return result;
}
