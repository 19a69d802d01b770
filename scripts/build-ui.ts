// `npm run build:ui`: builds the operator dashboard into services/dashboard/dist (the gateway serves
// it at /ui). `--if-stale` builds only when dist is missing or older than the sources;
// `--if-available` (the `prepare` step of `npm ci`) skips with one line where vite is not
// installed, e.g. `npm ci --omit=dev` in the gateway image, whose build stage has built it already.
import { parseArgs } from 'node:util';
import { buildUi, DASHBOARD_DIST, uiBuildState, viteAvailable } from './lib/ui-build.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'if-stale': { type: 'boolean', default: false },
      'if-available': { type: 'boolean', default: false },
      'out-dir': { type: 'string' },
    },
  });
  const outDir = values['out-dir'] ?? DASHBOARD_DIST;
  if (!viteAvailable()) {
    if (values['if-available']) {
      process.stdout.write(
        'build:ui: vite is not installed (devDependencies omitted): dashboard not built\n',
      );
      return;
    }
    process.stderr.write('build:ui: vite is not installed: run npm ci (with devDependencies)\n');
    process.exit(1);
  }
  if (values['if-stale'] && uiBuildState(outDir) === 'fresh') return;
  const ms = await buildUi({ outDir });
  process.stdout.write(`build:ui: built the dashboard into ${outDir} in ${ms} ms\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`build:ui: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
