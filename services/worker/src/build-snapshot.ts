// `npm run build:snapshot`: builds (or confirms) the Pyodide memory snapshot for the current
// TASKS_* configuration ahead of time, e.g. in a Docker build, so the first worker start does not
// pay for it. Exits 0 with the snapshot's path on stdout.
import { type ConfigError, createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from './config.ts';
import { snapshotOptions } from './python/sandbox-config.ts';
import { ensureSnapshot } from './python/snapshot.ts';

let config: ReturnType<typeof loadWorkerConfig>;
try {
  config = loadWorkerConfig(process.env);
} catch (err) {
  process.stderr.write(`build-snapshot: ${(err as ConfigError).message}\n`);
  process.exit(78);
}
const log = createLogger('build-snapshot', config.log.level);
try {
  const { path } = await ensureSnapshot(snapshotOptions(config.python, log));
  process.stdout.write(`${path}\n`);
} catch (err) {
  log.fatal({ err }, 'snapshot build failed');
  process.exit(1);
}
