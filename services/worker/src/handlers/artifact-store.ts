// Stores what a Python run produced (figures, /output files) in S3 under the original's key
// scheme `{user_id}/{id}`, with metadata `category` and `thread_id`. Ids are derived from the task
// id and the artifact's position, so a retried task overwrites its own objects instead of leaving
// orphans beside them.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { type Storage, storageKey } from '@neuroagent/platform';
import type { Artifact } from '../python/protocol.ts';

/** The original stored plotly JSON with category "json"; the other kinds follow its lead. */
export const ARTIFACT_CATEGORY: Record<Artifact['kind'], string> = {
  plotly: 'json',
  matplotlib: 'image',
  file: 'file',
};

/** A UUID (RFC 9562 version 8) that is the same for the same task and artifact position. */
export function artifactId(taskId: string, index: number): string {
  const h = createHash('sha256').update(`${taskId}:${index}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x80;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** S3 metadata must be printable ASCII; file names are user input. */
function headerSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '_').slice(0, 200);
}

export interface StoreArtifactsRequest {
  taskId: string;
  userId: string;
  threadId: string | undefined;
  artifacts: Artifact[];
}

export async function storeArtifacts(storage: Storage, req: StoreArtifactsRequest): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, a] of req.artifacts.entries()) {
    const id = artifactId(req.taskId, i);
    const metadata: Record<string, string> = {
      category: ARTIFACT_CATEGORY[a.kind],
      thread_id: headerSafe(req.threadId ?? ''),
    };
    if (a.kind === 'file') metadata.filename = headerSafe(basename(a.name));
    await storage.put(storageKey(req.userId, id), a.data, { contentType: a.contentType, metadata });
    ids.push(id);
  }
  return ids;
}
