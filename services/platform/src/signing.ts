// Task message signatures. Anyone who can publish to `tasks.>` could otherwise choose a task's
// `userId`, and with it the S3 prefix its artifacts go to and the ledger owner. The gateway signs
// every task message with a key it shares with the workers (HMAC-SHA256 over the task id and the
// exact body bytes), and the workers dead-letter what does not verify (`bad_signature`). The task
// id is the subject's last token, so a signature cannot be moved to another task either. Node
// builtins and the platform's error and secret-file modules only: the scripts load it directly.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from './errors.ts';
import { readSecretFile } from './secret-file.ts';

/** The scheme tag in `Task-Signature: v1=<base64url>`; a new MAC layout gets a new tag. */
export const SIGNATURE_SCHEME = 'v1';
/** HMAC-SHA256 wants a key at least as long as its output. */
export const MIN_SIGNING_KEY_LENGTH = 32;

/** A signing key that is missing, unreadable or too short; the message names the variable. */
export class SigningKeyError extends AppError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('signing_key_invalid', message, options);
    this.name = 'SigningKeyError';
  }
}

export type SignatureCheck = { ok: true } | { ok: false; detail: string };

export interface TaskSigner {
  /** The `Task-Signature` header value for this task id and body. */
  sign(taskId: string, body: Uint8Array | string): string;
  /** Checks a header value against the current key, then each previous key. */
  verify(taskId: string, body: Uint8Array | string, header: string | undefined | null): SignatureCheck;
}

function mac(key: string, taskId: string, body: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(`${SIGNATURE_SCHEME}\n${taskId}\n`).update(body).digest();
}

export function checkSigningKey(key: string, variable: string): void {
  if (key.length < MIN_SIGNING_KEY_LENGTH) {
    throw new SigningKeyError(
      `${variable} must be at least ${MIN_SIGNING_KEY_LENGTH} characters (got ${key.length})`,
    );
  }
}

/** `current` signs and verifies; `previous` keys only verify, for a rotation without downtime. */
export function createTaskSigner(current: string, previous: readonly string[] = []): TaskSigner {
  const keys = [current, ...previous];
  return {
    sign(taskId, body) {
      return `${SIGNATURE_SCHEME}=${mac(current, taskId, body).toString('base64url')}`;
    },
    verify(taskId, body, header) {
      if (!header) return { ok: false, detail: 'the message has no Task-Signature header' };
      const [scheme, value, extra] = header.split('=');
      if (scheme !== SIGNATURE_SCHEME || value === undefined || extra !== undefined) {
        return { ok: false, detail: `Task-Signature is not of the form ${SIGNATURE_SCHEME}=<base64url>` };
      }
      const given = Buffer.from(value, 'base64url');
      for (const key of keys) {
        const expected = mac(key, taskId, body);
        if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
      }
      return {
        ok: false,
        detail:
          'Task-Signature does not match this task id and body under the signing key (forged or altered, or the gateway and the workers hold different keys)',
      };
    },
  };
}

export interface SigningKeySettings {
  signing_key: string;
  signing_key_file: string;
  signing_key_previous: string;
}

/**
 * The signer described by `<prefix>NATS__SIGNING_KEY` (or the file `<prefix>NATS__SIGNING_KEY_FILE`
 * when it is empty) and `<prefix>NATS__SIGNING_KEY_PREVIOUS`. Never generates a key: a service that
 * made up its own would sign or accept nothing its peers do. `npm start` generates the file.
 */
export function loadTaskSigner(settings: SigningKeySettings, prefix: string): TaskSigner {
  const keyVar = `${prefix}NATS__SIGNING_KEY`;
  let key = settings.signing_key;
  let source = keyVar;
  if (key === '') {
    const fileVar = `${keyVar}_FILE`;
    try {
      key = readSecretFile(settings.signing_key_file).secret;
    } catch (err) {
      throw new SigningKeyError(
        `no task signing key: ${keyVar} is empty and ${fileVar} (${settings.signing_key_file}) cannot be read (${(err as Error).message}); set one key, the same for the gateway (NEUROAGENT_NATS__SIGNING_KEY) and the workers (TASKS_NATS__SIGNING_KEY), see docs/operations.md`,
        { cause: err },
      );
    }
    source = `${fileVar} (${settings.signing_key_file})`;
  }
  checkSigningKey(key, source);
  const previous = settings.signing_key_previous
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  for (const k of previous) checkSigningKey(k, `each key of ${keyVar}_PREVIOUS`);
  return createTaskSigner(key, previous);
}
