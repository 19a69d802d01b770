// Secret files that a fresh checkout generates for itself (the dev JWT secret, the task signing
// key): 32 random bytes, base64url, mode 0600, in a folder created with mode 0700. Node builtins
// only, so the scripts (`npm start`, `npm run token`) can load it without the services.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface SecretFile {
  secret: string;
  /** True when this call generated the file. */
  created: boolean;
  /** True when the file is readable or writable by group or others. */
  looseMode: boolean;
}

export function readSecretFile(path: string): SecretFile {
  const secret = readFileSync(path, 'utf8').trim();
  const { mode } = statSync(path);
  return { secret, created: false, looseMode: (mode & 0o077) !== 0 };
}

/**
 * Reads the secret in `path`, generating it when the file is absent. Safe against a concurrent
 * generator (another process starting at the same time): `wx` lets only one writer win.
 */
export function loadOrCreateSecretFile(path: string): SecretFile {
  try {
    return readSecretFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  try {
    writeFileSync(path, `${secret}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readSecretFile(path);
  }
  return { secret, created: true, looseMode: false };
}
