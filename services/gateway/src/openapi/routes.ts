// GET /openapi.json and GET /docs. The docs page is self-contained: it MUST NOT load anything
// from another origin (the gateway often runs without internet access), and its CSP says so.
// Must not import app.ts: the document comes in as a function.
import { createHash } from 'node:crypto';
import type Router from '@koa/router';

// Rendered with textContent only: the spec is data, never HTML.
const SCRIPT = `
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; };
const main = document.querySelector('main');
fetch('./openapi.json').then((r) => r.json()).then((doc) => {
  document.title = doc.info.title + ' ' + doc.info.version;
  document.querySelector('h1').textContent = doc.info.title + ' ' + doc.info.version;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const d = el('details'); const s = el('summary');
      s.append(el('span', method.toUpperCase(), 'm ' + method), el('code', path), ' ' + (op.summary || ''), op.security ? ' (bearer JWT)' : '');
      d.append(s);
      if (op.description) d.append(el('p', op.description));
      for (const p of op.parameters || []) d.append(el('div', p.in + ' ' + p.name + (p.required ? ' (required)' : '') + ': ' + JSON.stringify(p.schema)));
      if (op.requestBody) d.append(el('div', 'body: ' + JSON.stringify(op.requestBody.content)));
      const ul = el('ul');
      for (const [status, res] of Object.entries(op.responses)) ul.append(el('li', status + ' ' + res.description + (res.content ? ' ' + JSON.stringify(res.content) : '')));
      d.append(ul); main.append(d);
    }
  }
  const sd = el('details'); sd.append(el('summary', 'Schemas'), el('pre', JSON.stringify(doc.components.schemas, null, 2)));
  main.append(sd);
}).catch((err) => { main.textContent = 'could not load openapi.json: ' + err; });
`;
const SCRIPT_HASH = createHash('sha256').update(SCRIPT).digest('base64');
const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 70em; }
details { border-bottom: 1px solid #ddd; padding: .3em 0; } summary { cursor: pointer; }
.m { display: inline-block; width: 4.5em; font-weight: bold; } .get { color: #1769aa; } .post { color: #2e7d32; } .delete { color: #c62828; }
pre, div, li { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; }
`;
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

export const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API</title><style>${STYLE}</style></head>
<body><h1>API</h1><p>Machine-readable: <a href="./openapi.json">openapi.json</a></p><main></main>
<script>${SCRIPT}</script></body></html>
`;

// Everything from this origin only; the inline script and style are allowed by hash.
export const DOCS_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${SCRIPT_HASH}'`,
  `style-src 'sha256-${STYLE_HASH}'`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function registerOpenApiRoutes(router: Router, getDocument: () => object): void {
  router.get('/openapi.json', (ctx) => {
    ctx.body = getDocument();
  });

  router.get('/docs', (ctx) => {
    ctx.set('content-security-policy', DOCS_CSP);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = DOCS_HTML;
  });
}
