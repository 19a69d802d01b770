// GET/HEAD /ui and /ui/*: the operator dashboard (services/dashboard), static files from
// NEUROAGENT_UI__DIR. Public: the page holds the login box, and every API call it makes carries the
// token. A path MUST stay inside the folder whatever its encoding (../, %2e%2e, %2f, %5c, %00), and
// the page MUST run under a CSP that allows this origin only and no inline script.
import { readFile, realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, resolve, sep } from 'node:path';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { AppDeps } from '../deps.ts';
import { sendError } from '../http-error.ts';

/** The repository (or image) root: relative NEUROAGENT_UI__DIR values are taken from here, not the cwd. */
const REPO_ROOT = resolve(import.meta.dirname, '../../../..');

export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

// Vite names every bundled asset assets/<name>-<hash>.<ext>: its content never changes under that
// name, so it may be cached for good. Everything else (index.html above all) is revalidated.
const HASHED_ASSET_RE = /^assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;
const IMMUTABLE = 'public, max-age=31536000, immutable';

export function resolveUiDir(dir: string): string {
  return isAbsolute(dir) ? dir : resolve(REPO_ROOT, dir);
}

/**
 * The file path under the dashboard folder that a request path names, '' for the folder itself,
 * or null when the path is not acceptable: undecodable, or (after decoding) holding a NUL, a
 * backslash, an empty, `.` or `..` segment. Checked after decoding, so no encoding gets past it.
 */
export function dashboardRelativePath(requestPath: string): string | null {
  if (requestPath === '/ui' || requestPath === '/ui/') return '';
  if (!requestPath.startsWith('/ui/')) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(requestPath.slice('/ui/'.length));
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/');
  // A trailing slash (one empty last segment) names a folder, served as the app's index.
  if (segments.at(-1) === '') segments.pop();
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return null;
  return segments.join('/');
}

async function regularFile(path: string, root: string): Promise<string | null> {
  try {
    const real = await realpath(path);
    // A symlink in the folder must not lead out of it either.
    if (!real.startsWith(root + sep)) return null;
    return (await stat(real)).isFile() ? real : null;
  } catch {
    return null;
  }
}

export function registerDashboardRoutes(router: Router, deps: Pick<AppDeps, 'config' | 'log'>): void {
  const dir = resolveUiDir(deps.config.ui.dir);
  let warned = false;

  async function serve(ctx: Context): Promise<void> {
    ctx.set('content-security-policy', DASHBOARD_CSP);
    ctx.set('x-content-type-options', 'nosniff');
    ctx.set('referrer-policy', 'no-referrer');
    // The router matches case-insensitively; the public-path check in auth does not.
    const rel = dashboardRelativePath(ctx.path);
    if (rel === null) {
      sendError(ctx, 400, { code: 'invalid_path', message: 'the path is not a file of the dashboard' });
      return;
    }
    let root: string;
    try {
      root = await realpath(dir);
    } catch {
      root = '';
    }
    const index = root ? await regularFile(join(root, 'index.html'), root) : null;
    if (!index) {
      if (!warned) {
        deps.log.warn({ dir }, 'dashboard not built: /ui answers 503 until `npm run build:ui` writes it');
        warned = true;
      }
      sendError(ctx, 503, {
        code: 'dashboard_not_built',
        message: 'the dashboard is not built: run `npm run build:ui` (or set NEUROAGENT_UI__DIR)',
      });
      return;
    }
    let file = rel === '' ? index : await regularFile(join(root, rel), root);
    if (!file) {
      // History-style paths of the app (no file extension) get the app; a missing asset is a 404.
      if (extname(rel) !== '') {
        sendError(ctx, 404, { code: 'not_found', message: `no file ${rel} in the dashboard` });
        return;
      }
      file = index;
    }
    const info = await stat(file);
    ctx.status = 200;
    ctx.type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    ctx.set('cache-control', file !== index && HASHED_ASSET_RE.test(rel) ? IMMUTABLE : 'no-cache');
    ctx.etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    ctx.lastModified = info.mtime;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = await readFile(file);
  }

  router.get('/ui', serve);
  router.get('/ui/*path', serve);
}
