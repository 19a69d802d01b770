// The one error class of `scripts/fetch-pyodide-packages.ts`. Its `code` is stable (tests and
// scripts match on it); the message is for the operator. Like the dev runner's DevError it has no
// `retryable` flag: nothing retries inside this CLI, and re-running it resumes where it stopped.

export type PackagesErrorCode =
  | 'bad_arguments'
  | 'bad_lock_file'
  | 'version_mismatch'
  | 'unknown_package'
  | 'ambiguous_package'
  | 'download_failed'
  | 'checksum_mismatch'
  | 'write_failed';

export class PackagesError extends Error {
  readonly code: PackagesErrorCode;

  constructor(code: PackagesErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PackagesError';
    this.code = code;
  }
}
