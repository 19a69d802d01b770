// Idempotency-Key on the submitting routes (docs/gateway.md): a client that retries a submission
// after a lost answer sends the same key and gets the same task, instead of running it twice. A
// key is claimed per user with SET NX, so of two requests racing on one key exactly one publishes;
// the claim holds the task id and a fingerprint of the request, and a later request with the same
// key but another body is refused (409 idempotency_key_reused) rather than answered with a task
// that is not the one it asked for.
import { createHash } from 'node:crypto';
import type { Redis } from '@neuroagent/platform';
import type { Context } from 'koa';
import { HttpError } from './http-error.ts';
import { inputDigest } from './ledger/ledger.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on an answer that comes from an earlier request with the same key. */
export const IDEMPOTENT_REPLAY_HEADER = 'idempotent-replayed';
// Printable ASCII without spaces, as the IETF draft's examples (UUIDs, random tokens) are.
const KEY_RE = /^[\x21-\x7e]+$/;

export interface IdempotencyOptions {
  redis: Redis;
  /** Prepended to every key: `<keyPrefix>idem:<sha256(user, key)>`. */
  keyPrefix: string;
  /** How long a key keeps its task; a retry after that submits again. */
  windowS: number;
  maxKeyLength: number;
}

/** The outcome of claiming a key: this request publishes `taskId`, or an earlier one did. */
export type Claim = { fresh: true; taskId: string } | { fresh: false; taskId: string };

export interface IdempotencyKeys {
  /**
   * Claims the request's key for `taskId`. Without a key, always fresh. With one already claimed by
   * the same user for the same request, the earlier task id; for another request, 409.
   */
  claim(ctx: Context, request: unknown, taskId: string): Promise<Claim & { key: string | null }>;
  /** Gives a fresh claim up after its submission failed, so a retry can submit again. */
  release(ctx: Context, key: string | null, taskId: string): Promise<void>;
}

// Deletes the claim only while it still holds this request's task id: a claim that expired and was
// taken by a later request must survive the earlier one's failure.
const RELEASE_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export function createIdempotencyKeys(opts: IdempotencyOptions): IdempotencyKeys {
  const { redis } = opts;
  if (!('neuroagentReleaseIdempotency' in redis)) {
    redis.defineCommand('neuroagentReleaseIdempotency', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
  }

  function headerKey(ctx: Context): string | null {
    const raw = ctx.get(IDEMPOTENCY_HEADER);
    if (raw === '') return null;
    if (raw.length > opts.maxKeyLength || !KEY_RE.test(raw)) {
      throw new HttpError(
        400,
        'invalid_idempotency_key',
        `Idempotency-Key must be 1 to ${opts.maxKeyLength} printable ASCII characters without spaces`,
        { details: [{ path: '/headers/idempotency-key', message: 'printable ASCII, no spaces' }] },
      );
    }
    return raw;
  }

  function redisKey(userId: string, key: string): string {
    // Hashed: user ids and client keys may hold any character, and neither should reach a log of keys.
    const digest = createHash('sha256').update(userId).update('\0').update(key).digest('hex');
    return `${opts.keyPrefix}idem:${digest}`;
  }

  const unavailable = (err: unknown) =>
    new HttpError(503, 'result_backend_unavailable', 'Redis is not reachable; the task was not submitted', {
      cause: err,
    });

  return {
    async claim(ctx, request, taskId) {
      const key = headerKey(ctx);
      if (key === null) return { fresh: true, taskId, key };
      const fingerprint = inputDigest({ method: ctx.method, route: ctx.path, request });
      const k = redisKey(ctx.state.userId, key);
      // Two tries: a claim can expire between a failed SET NX and the GET that reads it.
      for (let attempt = 0; attempt < 2; attempt++) {
        let existing: string | null;
        try {
          const set = await redis.set(k, `${taskId} ${fingerprint}`, 'EX', opts.windowS, 'NX');
          if (set === 'OK') return { fresh: true, taskId, key };
          existing = await redis.get(k);
        } catch (err) {
          throw unavailable(err);
        }
        if (existing === null) continue;
        const [earlierTask = '', earlierFingerprint] = existing.split(' ');
        if (earlierFingerprint !== fingerprint) {
          throw new HttpError(
            409,
            'idempotency_key_reused',
            'this Idempotency-Key was used for a different request; send a new key for a new request',
          );
        }
        ctx.set(IDEMPOTENT_REPLAY_HEADER, 'true');
        return { fresh: false, taskId: earlierTask, key };
      }
      throw unavailable(new Error('the idempotency claim kept expiring'));
    },

    async release(ctx, key, taskId) {
      if (key === null) return;
      await (redis as ScriptedRedis)
        .neuroagentReleaseIdempotency(redisKey(ctx.state.userId, key), `${taskId} `)
        .catch(() => {
          // The claim then lives out its window: a retry with the key gets this task id, whose
          // record says it failed to submit (the ledger marks it failed), which is the truth.
        });
    },
  };
}

type ScriptedRedis = Redis & { neuroagentReleaseIdempotency(key: string, prefix: string): Promise<number> };
