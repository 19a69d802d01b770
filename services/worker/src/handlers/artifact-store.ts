// Stores what a Python run produced (figures, /output files) in S3 under the original's key
// scheme `{user_id}/{id}`, with metadata `category` and `thread_id`. Ids are derived from the task
// id and the artifact's position, so a retried task overwrites its own objects instead of leaving
// orphans beside them.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { AppError, type Storage, storageKey } from '@neuroagent/platform';
import { hasControl } from '../python/output-limits.ts';
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

/**
 * The only content types an artifact is stored with. A presigned URL opens on the storage
 * server's origin, so HTML, SVG, JavaScript, XHTML, XML and the like would run there as active
 * content: whatever the sandbox claims, anything not listed is stored as octet-stream.
 */
export const ARTIFACT_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'application/json',
  'application/octet-stream',
  'application/pdf',
  'application/zip',
  'image/gif',
  'image/jpeg',
  'image/png',
  'image/webp',
  'text/csv',
  'text/plain',
  'text/tab-separated-values',
]);

/** An artifact the sandbox reported with a name or content type that no honest run produces. */
// Not a task failure: the handler turns it into an output-limit result, so it never ends a task.
export class ArtifactRejectedError extends AppError {
  constructor(message: string) {
    super('artifact_rejected', message);
    this.name = 'ArtifactRejectedError';
  }
}

export function storedContentType(claimed: string): string {
  const type = claimed.split(';', 1)[0]!.trim().toLowerCase();
  return ARTIFACT_CONTENT_TYPES.has(type) ? type : 'application/octet-stream';
}

/** Always `attachment`: a browser saves the file instead of rendering it. */
export function attachmentDisposition(name: string): string {
  const ascii = basename(name).replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(basename(name))}`;
}

/** Refuses the whole report before anything is stored: the sandbox's output is untrusted. */
export function checkArtifacts(artifacts: Artifact[]): void {
  for (const a of artifacts) {
    if (hasControl(a.name)) throw new ArtifactRejectedError('an artifact file name has control characters');
    if (hasControl(a.contentType)) {
      throw new ArtifactRejectedError('an artifact content type has control characters');
    }
  }
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
  checkArtifacts(req.artifacts);
  const ids: string[] = [];
  for (const [i, a] of req.artifacts.entries()) {
    const id = artifactId(req.taskId, i);
    const metadata: Record<string, string> = {
      category: ARTIFACT_CATEGORY[a.kind],
      thread_id: headerSafe(req.threadId ?? ''),
    };
    if (a.kind === 'file') metadata.filename = headerSafe(basename(a.name));
    await storage.put(storageKey(req.userId, id), a.data, {
      contentType: storedContentType(a.contentType),
      contentDisposition: attachmentDisposition(a.kind === 'file' ? a.name : `${a.kind}-${i}`),
      metadata,
    });
    ids.push(id);
  }
  return ids;
}
