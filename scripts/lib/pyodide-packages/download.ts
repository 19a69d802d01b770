// Downloads lock entries from `<baseUrl><file_name>` into a directory with global fetch, checks each
// file's sha256 against the lock and only then gives it its final name (temp file + fsync + rename),
// so the directory never holds a partial or unverified file under a name the lock lists. Files
// already present with the right hash are kept. It must not import service code.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PackagesError } from './errors.ts';
import { describeCause, type LockPackage } from './lock.ts';

export type DownloadStatus = 'downloaded' | 'present' | 'replaced';

export interface DownloadResult {
  fileName: string;
  status: DownloadStatus;
  bytes: number;
}

export interface DownloadOptions {
  /** Must end with '/' (parseCliArgs ensures it). */
  baseUrl: URL;
  outDir: string;
  packages: readonly LockPackage[];
  concurrency: number;
  /** Called as each file is done, in completion order. */
  onResult?: (result: DownloadResult) => void;
  /** Aborting stops every download and removes its temp file. */
  signal?: AbortSignal;
}

/** The sha256 (hex) and size of a file, or undefined when it does not exist. */
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number } | undefined> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PackagesError('write_failed', `cannot read ${path}: ${describeCause(err)}`, { cause: err });
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Fetches every package's file, at most `concurrency` at a time. On the first failure the others
 * are aborted (their temp files removed) and that failure is thrown; files finished before it stay,
 * so a second run only fetches what is missing.
 */
export async function downloadPackages(options: DownloadOptions): Promise<DownloadResult[]> {
  const failure = new AbortController();
  const signal =
    options.signal === undefined ? failure.signal : AbortSignal.any([failure.signal, options.signal]);
  const pending = [...options.packages];
  const results: DownloadResult[] = [];
  let firstError: unknown;

  async function lane(): Promise<void> {
    for (let entry = pending.shift(); entry !== undefined; entry = pending.shift()) {
      if (signal.aborted) return;
      try {
        const result = await ensurePackageFile(entry, options.baseUrl, options.outDir, signal);
        results.push(result);
        options.onResult?.(result);
      } catch (err) {
        if (firstError === undefined) firstError = err;
        failure.abort(err);
        return;
      }
    }
  }

  await Promise.all(Array.from({ length: Math.min(options.concurrency, pending.length) }, lane));
  if (firstError !== undefined) throw firstError;
  // An abort from outside that landed between two files leaves no error of its own.
  options.signal?.throwIfAborted();
  return results;
}

/** Keeps `<outDir>/<file_name>` when its hash is right, else downloads it. */
export async function ensurePackageFile(
  entry: LockPackage,
  baseUrl: URL,
  outDir: string,
  signal?: AbortSignal,
): Promise<DownloadResult> {
  const path = join(outDir, entry.file_name);
  const existing = await hashFile(path);
  if (existing !== undefined && existing.sha256 === entry.sha256.toLowerCase()) {
    return { fileName: entry.file_name, status: 'present', bytes: existing.bytes };
  }
  const bytes = await downloadVerified(new URL(entry.file_name, baseUrl), path, entry.sha256, signal);
  return { fileName: entry.file_name, status: existing === undefined ? 'downloaded' : 'replaced', bytes };
}

/** Streams `url` into a temp file next to `path`, checks its sha256, then renames it to `path`. */
export async function downloadVerified(
  url: URL,
  path: string,
  sha256: string,
  signal?: AbortSignal,
): Promise<number> {
  let response: Response;
  try {
    response = await fetch(url, { signal: signal ?? null });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw new PackagesError('download_failed', `GET ${url.href} failed: ${describeCause(err)}`, {
      cause: err,
    });
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new PackagesError(
      'download_failed',
      `GET ${url.href} answered HTTP ${response.status} ${response.statusText}`.trimEnd(),
    );
  }

  // In the same directory, so the rename below is atomic; the leading dot keeps it out of `ls`.
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomUUID().slice(0, 8)}.part`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const file = await open(temp, 'wx');
    try {
      for await (const chunk of response.body) {
        hash.update(chunk);
        bytes += chunk.length;
        await file.write(chunk);
      }
      // Without the fsync, a crash soon after the rename could leave a short file under the final name.
      await file.sync();
    } finally {
      await file.close();
    }
    const actual = hash.digest('hex');
    // MUST stay before the rename: only content with the lock's hash may carry the lock's file name.
    if (actual !== sha256.toLowerCase()) {
      throw new PackagesError(
        'checksum_mismatch',
        `${url.href}: sha256 ${actual} (${bytes} bytes), the lock says ${sha256.toLowerCase()}; ` +
          'does --base-url point at the distribution this lock belongs to?',
      );
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof PackagesError) throw err;
    if (signal?.aborted) throw signal.reason;
    if (isFileSystemError(err)) {
      throw new PackagesError('write_failed', `cannot write ${temp}: ${describeCause(err)}`, { cause: err });
    }
    throw new PackagesError(
      'download_failed',
      `GET ${url.href} broke off after ${bytes} bytes: ${describeCause(err)}`,
      { cause: err },
    );
  }
  return bytes;
}

function isFileSystemError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (
    typeof code === 'string' && /^E[A-Z]+$/.test(code) && (err as { syscall?: unknown }).syscall !== undefined
  );
}
