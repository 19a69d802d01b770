// Container health check for processes without an HTTP port (the workers): healthy while a heartbeat
// file is fresh. Usage: node healthcheck-file.mjs <file> <max-age-seconds>. Exit 0 = healthy, 1 = not.
// Plain .mjs with node: builtins only, so it runs in any image without the workspace installed.
import { statSync } from 'node:fs';

const [file, maxAgeArg] = process.argv.slice(2);
const maxAgeS = Number(maxAgeArg);
if (!file || !Number.isFinite(maxAgeS) || maxAgeS <= 0) {
  console.error('usage: healthcheck-file.mjs <file> <max-age-seconds>');
  process.exit(1);
}

let ageS;
try {
  ageS = (Date.now() - statSync(file).mtimeMs) / 1000;
} catch (err) {
  // A missing file means the worker never started its loop (or cannot write /tmp): unhealthy, not a crash.
  console.error(`${file}: ${err.code ?? err.message}`);
  process.exit(1);
}
if (ageS > maxAgeS) {
  console.error(`${file}: last heartbeat ${ageS.toFixed(1)} s ago (limit ${maxAgeS} s)`);
  process.exit(1);
}
process.exit(0);
