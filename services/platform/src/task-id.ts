// UUIDv7 task ids (RFC 9562): time-ordered, so `GET /tasks` and the stream sort by submission.
import { randomBytes } from 'node:crypto';

export function newTaskId(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  let ms = BigInt(now);
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(ms & 0xffn);
    ms >>= 8n;
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function taskIdTime(id: string): number | null {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-7/.exec(id);
  return m ? Number.parseInt(`${m[1]}${m[2]}`, 16) : null;
}
