import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import {
  findBoundaryViolations,
  findDependencyViolations,
  findImportCycles,
  importSpecifiers,
} from '../scripts/lib/import-boundaries.ts';
import { ROOT } from './support/processes.ts';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'boundaries-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

describe('import boundaries', () => {
  it('holds in this repository', () => {
    assert.deepEqual(findBoundaryViolations(ROOT), []);
    assert.deepEqual(findDependencyViolations(ROOT), []);
  });

  it('has no import cycle, type-only imports included', () => {
    assert.deepEqual(findImportCycles(ROOT), []);
  });

  it('no gateway route imports app.ts: routes take their dependencies from deps.ts', () => {
    const routeDir = join(ROOT, 'services/gateway/src/routes');
    for (const name of readdirSync(routeDir)) {
      const specs = importSpecifiers(readFileSync(join(routeDir, name), 'utf8'));
      assert.ok(specs.length > 0, `${name} has imports`);
      assert.ok(!specs.some((s) => /(^|\/)app\.ts$/.test(s)), `${name} imports app.ts`);
    }
  });

  it('finds a cycle, naming its files in order, and none in a tree without one', () => {
    const cyclic = tree({
      'services/a.ts': "import { b } from './b.ts';",
      'services/b.ts': "import type { C } from './c/c.ts';",
      'services/c/c.ts': "export * from '../a.ts';",
      'services/d.ts': "import { b } from './b.ts';",
    });
    assert.deepEqual(findImportCycles(cyclic), [
      ['services/a.ts', 'services/b.ts', 'services/c/c.ts', 'services/a.ts'],
    ]);
    const acyclic = tree({
      'services/a.ts': "import { b } from './b.ts';",
      'services/b.ts': "import 'koa';",
      'services/c.ts': "import { a } from './a.ts'; import { b } from './b.ts';",
    });
    assert.deepEqual(findImportCycles(acyclic), []);
  });

  it('finds every kind of import statement', () => {
    const src = [
      "import a from 'a';",
      "import type { B } from 'b';",
      "import 'c';",
      "export * from 'd';",
      "const e = await import('e');",
      "const f = require('f');",
      "import {\n  g,\n} from 'g';",
    ].join('\n');
    assert.deepEqual(importSpecifiers(src), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  });

  it('fails when the gateway imports worker code, Pyodide or piscina', () => {
    const root = tree({
      'services/gateway/src/a.ts': "import { x } from '../../worker/src/consumer.ts';",
      'services/gateway/src/b.ts': "const p = await import('pyodide');",
      'services/gateway/src/c.ts': "import { Piscina } from 'piscina';",
      'services/gateway/src/d.ts': "import w from '@neuroagent/worker';",
      'services/gateway/src/ok.ts': "import { x } from '@neuroagent/platform';\nimport y from './y.ts';",
      'services/gateway/package.json': JSON.stringify({ dependencies: { pyodide: '1' } }),
    });
    const found = findBoundaryViolations(root).map((v) => `${v.file} ${v.specifier}`);
    assert.deepEqual(found.sort(), [
      'services/gateway/src/a.ts ../../worker/src/consumer.ts',
      'services/gateway/src/b.ts pyodide',
      'services/gateway/src/c.ts piscina',
      'services/gateway/src/d.ts @neuroagent/worker',
    ]);
    assert.equal(findDependencyViolations(root).length, 1);
  });

  it('fails when the worker imports gateway code, or the shared packages import either service', () => {
    const root = tree({
      'services/worker/src/a.ts': "import { createApp } from '../../gateway/src/app.ts';",
      'services/worker/src/b.ts': "export * from '@neuroagent/gateway/x';",
      'services/platform/src/c.ts': "import '../../worker/src/main.ts';",
      'contracts/src/d.ts': "import { x } from '@neuroagent/platform';",
    });
    assert.equal(findBoundaryViolations(root).length, 4);
  });
});
