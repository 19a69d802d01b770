// Vite build of the operator dashboard: a static bundle under dist/, served by the gateway at /ui/
// (services/gateway/src/routes/dashboard.ts). Nothing may be inlined as a data: URL or loaded
// from another origin: the page runs under `default-src 'self'` and must work offline.
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/ui/',
  plugins: [preact({ prerender: { enabled: false } })],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
