// Log lines written turn by turn: the lines of one event-loop turn reach stdout in one write, a
// line never waits past the end of its turn, and the lines of the last turn are written when the
// process exits.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createLogger, turnBatched } from '../src/logger.ts';

describe('turnBatched log destination', () => {
  it('writes the lines of one turn in one write, at the end of that turn', async () => {
    const writes: string[] = [];
    const log = createLogger('t', 'info', turnBatched({ write: (chunk) => writes.push(chunk) }));
    log.info('one');
    log.info('two');
    log.info('three');
    assert.equal(writes.length, 0, 'nothing written before the turn ends');
    await nextTurn();
    assert.equal(writes.length, 1, 'one write for the turn');
    assert.deepEqual(
      (writes[0] ?? '')
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
      ['one', 'two', 'three'],
    );
    log.warn('later');
    await nextTurn();
    assert.equal(writes.length, 2);
    assert.match(writes[1] ?? '', /"msg":"later"/);
  });

  it('writes what is left when the process exits', async () => {
    const script = `
      import { createLogger } from ${JSON.stringify(new URL('../src/logger.ts', import.meta.url).href)};
      const log = createLogger('t', 'info', undefined, { batchWrites: true });
      log.info('before exit');
      log.fatal('exiting');
      process.exit(3);`;
    const run = promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    const err = (await run.then(
      () => assert.fail('the child should exit 3'),
      (e: unknown) => e,
    )) as { code: number; stdout: string };
    assert.equal(err.code, 3);
    const msgs = err.stdout
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.deepEqual(msgs, ['before exit', 'exiting']);
  });
});
