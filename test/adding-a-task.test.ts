// docs/adding-a-task.md, followed to the letter: copy the repository, write the page's code blocks
// where they say (two new files, three registry lines), and check that
//   - `tsc` refuses the task without its handler line, and a handler failing with an undeclared code;
//   - every derived surface shows the task, against the copy's real gateway and worker processes
//     (test/fixtures/word-count.e2e.ts);
//   - the compose check fails until docker-compose.yml has a consumer for the new queue.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from './support/processes.ts';

interface Block {
  file: string;
  /** The line the block goes after; absent for a new file. */
  after?: string;
  code: string;
}

/** The page's code blocks that carry `file=`, in order. */
export function recipeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  for (const m of markdown.matchAll(/^```ts file=(\S+)(?: after="([^"]*)")?\n([\s\S]*?)^```$/gm)) {
    blocks.push({
      file: m[1] as string,
      ...(m[2] === undefined ? {} : { after: m[2] }),
      code: m[3] as string,
    });
  }
  return blocks;
}

const COPIED = [
  'contracts',
  'services',
  'scripts',
  'test',
  'infra',
  'docs',
  'docker-compose.yml',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'README.md',
  '.env.app',
  '.env.tasks',
];

/** A copy of the sources whose node_modules resolves the workspace packages to the copy itself. */
function copyRepository(dest: string): void {
  for (const entry of COPIED) {
    cpSync(join(ROOT, entry), join(dest, entry), {
      recursive: true,
      filter: (src) => !/[/\\](node_modules|\.data)([/\\]|$)/.test(src),
    });
  }
  const modules = join(dest, 'node_modules');
  mkdirSync(join(modules, '@neuroagent'), { recursive: true });
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (name === '@neuroagent') continue;
    symlinkSync(join(ROOT, 'node_modules', name), join(modules, name));
  }
  const workspaces: Record<string, string> = {
    contracts: 'contracts',
    platform: 'services/platform',
    gateway: 'services/gateway',
    worker: 'services/worker',
  };
  for (const [name, dir] of Object.entries(workspaces)) {
    symlinkSync(join(dest, dir), join(modules, '@neuroagent', name));
  }
}

function apply(dest: string, block: Block): void {
  const path = join(dest, block.file);
  if (block.after === undefined) {
    assert.ok(!existsSync(path), `${block.file} is meant to be a new file`);
    writeFileSync(path, block.code);
    return;
  }
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const at = lines.indexOf(block.after);
  assert.ok(at >= 0, `${block.file} has no line ${JSON.stringify(block.after)}`);
  assert.equal(lines.indexOf(block.after, at + 1), -1, `${block.after} is not unique in ${block.file}`);
  lines.splice(at + 1, 0, ...block.code.replace(/\n$/, '').split('\n'));
  writeFileSync(path, lines.join('\n'));
}

function run(dest: string, args: string[], timeoutMs = 120_000) {
  // Without NODE_TEST_CONTEXT: a `node --test` started from inside a test would skip its files.
  const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
  const r = spawnSync(process.execPath, args, {
    cwd: dest,
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const tsc = (dest: string) =>
  run(dest, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', 'tsconfig.json']);

describe('docs/adding-a-task.md', () => {
  const blocks = recipeBlocks(readFileSync(join(ROOT, 'docs', 'adding-a-task.md'), 'utf8'));
  const newFiles = blocks.filter((b) => b.after === undefined);
  const registryLines = blocks.filter((b) => b.after !== undefined);
  const handlerLine = registryLines.find((b) => b.file === 'services/worker/src/handlers/registry.ts');
  let dest = '';

  before(() => {
    dest = mkdtempSync(join(tmpdir(), 'adding-a-task-'));
    copyRepository(dest);
  });
  after(() => {
    if (dest) rmSync(dest, { recursive: true, force: true });
  });

  it('takes two new files and at most three registry lines', () => {
    assert.deepEqual(
      newFiles.map((b) => b.file),
      ['contracts/src/word-count.ts', 'services/worker/src/handlers/word-count.ts'],
    );
    const lines = registryLines.reduce((n, b) => n + b.code.trimEnd().split('\n').length, 0);
    assert.ok(lines <= 3, `${lines} registry lines`);
    assert.ok(handlerLine, 'the handler registry line is part of the recipe');
  });

  it('does not type-check without the handler line, nor with an undeclared failure code', () => {
    for (const b of blocks) if (b !== handlerLine) apply(dest, b);
    const missing = tsc(dest);
    assert.notEqual(missing.status, 0, 'tsc accepts a task without a handler');
    assert.match(missing.output, /handlers\/registry\.ts.*word_count/s);

    apply(dest, handlerLine as Block);
    const handler = join(dest, 'services/worker/src/handlers/word-count.ts');
    const source = readFileSync(handler, 'utf8');
    writeFileSync(handler, source.replace("'empty_text'", "'no_words'"));
    const undeclared = tsc(dest);
    assert.notEqual(undeclared.status, 0, 'tsc accepts a failure code the descriptor does not declare');
    assert.match(undeclared.output, /word-count\.ts.*no_words/s);

    writeFileSync(handler, source);
    const complete = tsc(dest);
    assert.equal(complete.status, 0, complete.output);
  });

  it('shows the task on every surface, through the real gateway and worker', () => {
    const e2e = run(
      dest,
      ['--test', '--test-global-setup=test/global-setup.ts', 'test/fixtures/word-count.e2e.ts'],
      180_000,
    );
    assert.equal(e2e.status, 0, e2e.output.slice(-4000));
    assert.match(e2e.output, /(#|ℹ) pass 4\b/);
  });

  it('fails the compose check until a worker in docker-compose.yml consumes the new queue', () => {
    const check = () =>
      run(dest, [
        '--test',
        '--test-reporter=tap',
        '--test-name-pattern=has a consumer for every queue',
        'test/compose.test.ts',
      ]);
    const before = check();
    assert.notEqual(before.status, 0, 'the compose check passes without a consumer for text_q');
    assert.match(before.output, /no consumer for queue\(s\) text_q/);

    const compose = join(dest, 'docker-compose.yml');
    const text = readFileSync(compose, 'utf8');
    assert.match(text, /TASKS_QUEUES: circuit_q,echo_q\n/);
    writeFileSync(
      compose,
      text.replace('TASKS_QUEUES: circuit_q,echo_q\n', 'TASKS_QUEUES: circuit_q,echo_q,text_q\n'),
    );
    const fixed = check();
    assert.equal(fixed.status, 0, fixed.output.slice(0, 3000));
  });
});
