import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import {
  findBoundaryViolations,
  findDependencyViolations,
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
