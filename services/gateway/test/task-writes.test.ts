// The ledger's hot writes below the ORM. The plan (task-write-plan.ts) decides each statement from
// what the previous ones changed, so its lost race is driven here statement by statement; then,
// against the real PostgreSQL server, two gateways' ledgers racing to create one unknown task,
// a batch that fails half-way (nothing of it stays), and a submit batch naming one task twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger, newTaskId } from '@neuroagent/platform';
import { type Ledger, type LedgerEvent, openLedger } from '../src/ledger/ledger.ts';
import { applyPlan, type PlannedStatement, runPlanSync } from '../src/ledger/task-write-plan.ts';
import { createPostgresDatabase } from './postgres-db.ts';

const log = createLogger('task-writes-test', 'silent');
const ts = () => new Date().toISOString();

describe('the apply plan', () => {
  it('applies an event to the row another gateway created between its check and its insert', () => {
    const event: LedgerEvent = { taskId: 't1', status: 'succeeded', ts: ts(), owner: 'u' };
    const seen: PlannedStatement['kind'][] = [];
    // What the database answers: no row to update, none there, the insert loses the race, then
    // the update finds the winner's row.
    const answers = [0, 0, 0, 1];
    const results = runPlanSync(applyPlan([event], new Date()), (s) => {
      seen.push(s.kind);
      return answers.shift() ?? 0;
    });
    assert.deepEqual(seen, ['end', 'exists', 'insertUnknown', 'end']);
    assert.deepEqual(results, ['applied']);
  });

  it('applies an event to a row that appeared between its update and its check', () => {
    const event: LedgerEvent = { taskId: 't3', status: 'succeeded', ts: ts() };
    const seen: PlannedStatement['kind'][] = [];
    const answers = [0, 1, 1];
    const results = runPlanSync(applyPlan([event], new Date()), (s) => {
      seen.push(s.kind);
      return answers.shift() ?? 0;
    });
    assert.deepEqual(seen, ['end', 'exists', 'end']);
    assert.deepEqual(results, ['applied']);
  });

  it('runs a start and end pair as one statement, and falls back to each when it changes nothing', () => {
    const start: LedgerEvent = { taskId: 't2', status: 'running', ts: ts(), attempt: 1 };
    const end: LedgerEvent = { taskId: 't2', status: 'succeeded', ts: ts(), attempt: 1 };
    const paired: PlannedStatement['kind'][] = [];
    assert.deepEqual(
      runPlanSync(applyPlan([start, end], new Date()), (s) => {
        paired.push(s.kind);
        return 1;
      }),
      ['applied', 'applied'],
    );
    assert.deepEqual(paired, ['startAndEnd']);
    const apart: PlannedStatement['kind'][] = [];
    // The pair changes nothing (the row moved on), nor does the start (twice: the row exists); the
    // end applies.
    const answers = [0, 0, 1, 0, 1];
    assert.deepEqual(
      runPlanSync(applyPlan([start, end], new Date()), (s) => {
        apart.push(s.kind);
        return answers.shift() ?? 0;
      }),
      ['ignored', 'applied'],
    );
    assert.deepEqual(apart, ['startAndEnd', 'start', 'exists', 'start', 'end']);
  });
});

describe('PostgreSQL ledger writes below the ORM', () => {
  let db: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let a: Ledger;
  let b: Ledger;
  before(async () => {
    db = await createPostgresDatabase('taskwrites');
    a = await openLedger({ url: db.url, debug: false }, log);
    b = await openLedger({ url: db.url, debug: false }, log);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('creates an unknown task once when two gateways race for it, each event applied', async () => {
    for (let i = 0; i < 20; i++) {
      const id = newTaskId();
      const started: LedgerEvent = { taskId: id, status: 'running', ts: ts(), attempt: 1, owner: 'race' };
      const ended: LedgerEvent = { taskId: id, status: 'succeeded', ts: ts(), attempt: 1, owner: 'race' };
      const results = await Promise.all([a.applyEvent(started), b.applyEvent(ended)]);
      assert.ok(results.includes('created'), JSON.stringify(results));
      const row = await a.get(id);
      assert.equal(row?.status, 'succeeded', `${i}: ${JSON.stringify(results)}`);
      assert.equal(row?.owner, 'race');
    }
  });

  it('keeps nothing of a batch that fails half-way', async () => {
    const id = newTaskId();
    await a.recordSubmitted({
      id,
      owner: 'u',
      queue: 'echo_q',
      task: 'echo',
      submittedAt: new Date(),
      inputDigest: 'd'.repeat(64),
    });
    // error_code is varchar(64): the second event cannot be stored.
    const batch: LedgerEvent[] = [
      { taskId: id, status: 'running', ts: ts(), attempt: 1 },
      { taskId: newTaskId(), status: 'failed', ts: ts(), code: 'x'.repeat(65) },
    ];
    await assert.rejects(a.applyEvents(batch));
    assert.equal((await a.get(id))?.status, 'pending', 'the first event was rolled back with the batch');
    // The pool is healthy afterwards: the same event applies on its own.
    assert.equal(await a.applyEvent(batch[0] as LedgerEvent), 'applied');
    assert.equal((await a.get(id))?.status, 'running');
  });

  it('records a submit batch that names one task twice, once', async () => {
    const id = newTaskId();
    const t = {
      id,
      owner: 'u',
      queue: 'echo_q',
      task: 'echo',
      submittedAt: new Date(),
      inputDigest: 'e'.repeat(64),
    };
    await a.recordSubmittedMany([t, { ...t }, { ...t, id: newTaskId() }]);
    assert.equal((await a.get(id))?.input_digest, 'e'.repeat(64));
  });
});
