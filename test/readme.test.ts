// The README's configuration tables are the code's: regenerate them with `npm run config:doc`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { configDoc, rewriteEnvFile, taskTable } from '../scripts/config-doc.ts';
import { ROOT } from './support/processes.ts';

describe('README', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

  it('has the configuration tables that `npm run config:doc` prints', () => {
    const m = /<!-- config:begin -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
    assert.ok(m, 'README has the config markers');
    assert.equal(m[1], configDoc());
  });

  it('has the task table that `npm run config:doc` derives from the task registry', () => {
    const m = /<!-- tasks:begin -->\n([\s\S]*?)\n<!-- tasks:end -->/.exec(readme);
    assert.ok(m, 'README has the task markers');
    assert.equal(m[1], taskTable());
    for (const name of ['run_python', 'circuit_population_analysis', 'echo'])
      assert.match(m[1], new RegExp(`\`${name}\``));
  });

  it('has .env.app and .env.tasks listing every variable at its default', () => {
    for (const [file, service] of [
      ['.env.app', 'gateway'],
      ['.env.tasks', 'worker'],
    ] as const) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      assert.equal(
        text,
        rewriteEnvFile(text, service),
        `${file} is stale: run npm run config:doc -- --write`,
      );
    }
  });

  it('names the two quickstart commands that CI runs', () => {
    assert.match(readme, /npm ci && npm start/);
    assert.match(readme, /^npm test /m);
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    assert.match(ci, /bounded npm test\n/);
  });
});
