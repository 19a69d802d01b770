// UUIDv7 task ids (RFC 9562): time-ordered, so `GET /tasks` and the stream sort by submission.
import { randomUUID } from 'node:crypto';

/**
 * A UUIDv7: 48 bits of Unix milliseconds, version 7, then the random bits and the RFC variant of a
 * v4 UUID. randomUUID() draws from a cached entropy pool, where a randomBytes(16) per id was a
 * system call each (a visible share of the gateway's CPU per task).
 */
export function newTaskId(now: number = Date.now()): string {
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx, V the variant
  const time = Math.trunc(now).toString(16).padStart(12, '0').slice(-12);
  return `${time.slice(0, 8)}-${time.slice(8)}-7${random.slice(15)}`;
}

export function taskIdTime(id: string): number | null {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-7/.exec(id);
  return m ? Number.parseInt(`${m[1]}${m[2]}`, 16) : null;
}
