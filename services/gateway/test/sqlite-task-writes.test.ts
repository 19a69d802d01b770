// The SQLite ledger's hot writes run as prepared statements on the ORM's own connection. They must
// never join a transaction the ORM has open there (it would take them with it on a rollback): a
// write waits for it to end, and fails with ledger_busy when it stays open too long.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EntityManager } from '@mikro-orm/core';
import { createLogger, newTaskId } from '@neuroagent/platform';
import { AuditRow } from '../src/ledger/audit-entity.ts';
import { type Ledger, openLedger } from '../src/ledger/ledger.ts';
import { LedgerBusyError } from '../src/ledger/sqlite-task-writes.ts';

const log = createLogger('sqlite-task-writes-test', 'silent');
const submitted = (id: string) => ({
  id,
  owner: 'u1',
  queue: 'echo_q',
  task: 'echo',
  submittedAt: new Date(),
  inputDigest: 'd'.repeat(64),
});

describe('SQLite ledger writes below the ORM', () => {
  let dir: string;
  let ledger: Ledger;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sqlite-writes-'));
    ledger = await openLedger(
      { url: `sqlite:${join(dir, 'ledger.sqlite')}`, debug: false, sqlite_transaction_wait_ms: 300 },
      log,
    );
  });
  after(async () => {
    await ledger.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** An ORM transaction that writes, stays open `holdMs`, then rolls back. */
  const rolledBack = (holdMs: number) =>
    ledger.orm.em
      .fork()
      .transactional(async (em: EntityManager) => {
        await em.insert(AuditRow, { at: new Date(), actor: 'tester', action: 'test.rollback', target: 'x' });
        await sleep(holdMs);
        throw new Error('roll back');
      })
      .catch((err: Error) => assert.equal(err.message, 'roll back'));

  it('waits for an open ORM transaction instead of joining it: its rollback keeps the task', async () => {
    const id = newTaskId();
    const tx = rolledBack(100);
    await sleep(10); // the transaction is open now
    const started = performance.now();
    await ledger.recordSubmitted(submitted(id));
    const waited = performance.now() - started;
    await tx;
    assert.ok(waited >= 50, `the write waited ${Math.round(waited)} ms for the transaction`);
    const row = await ledger.get(id);
    assert.equal(row?.status, 'pending', 'the row outlived the rolled-back transaction');
    assert.equal(await ledger.orm.em.fork().count(AuditRow, { action: 'test.rollback' }), 0);
    assert.equal(
      await ledger.applyEvent({ taskId: id, status: 'succeeded', ts: new Date().toISOString() }),
      'applied',
    );
    assert.equal((await ledger.get(id))?.status, 'succeeded');
  });

  it('fails with ledger_busy when the transaction stays open past the wait limit', async () => {
    const tx = rolledBack(800);
    await sleep(10);
    await assert.rejects(ledger.recordSubmitted(submitted(newTaskId())), (err: unknown) => {
      assert.ok(err instanceof LedgerBusyError);
      assert.equal(err.code, 'ledger_busy');
      return true;
    });
    await tx;
  });
});
