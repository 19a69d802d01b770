// GET /storage/{id}/presigned-url: a short-lived URL for one of the caller's artifacts. Keys are
// `{user_id}/{id}`, so a caller can only ever name objects under their own prefix; an id that is
// not theirs (or not there) is 404, like an unknown one.
import type Router from '@koa/router';
import { isStorageId, storageKey } from '@neuroagent/platform';
import type { StorageRouteDeps } from '../deps.ts';
import { HttpError } from '../http-error.ts';

export function registerStorageRoutes(router: Router, deps: StorageRouteDeps): void {
  router.get('/storage/:id/presigned-url', async (ctx) => {
    const { storage } = deps;
    if (!storage) {
      throw new HttpError(
        503,
        'storage_disabled',
        'artifact storage is not configured (NEUROAGENT_STORAGE__ENABLED)',
      );
    }
    const id = ctx.params.id ?? '';
    const notFound = () => new HttpError(404, 'storage_not_found', `no stored file ${id}`);
    if (!isStorageId(id)) throw notFound();
    const key = storageKey(ctx.state.userId, id);
    let info: Awaited<ReturnType<typeof storage.head>>;
    try {
      info = await storage.head(key);
    } catch (err) {
      throw new HttpError(503, 'storage_unavailable', 'artifact storage did not answer', { cause: err });
    }
    if (!info) throw notFound();
    // The original answered with the bare URL string; keep that shape for its clients.
    ctx.body = JSON.stringify(await storage.presignGet(key, deps.config.storage.expires_in));
    ctx.type = 'application/json';
  });
}
