// The task ledger and its `tasks:events` consumer. The same suite runs against SQLite (a temp file)
// and PostgreSQL (a fresh `ledger_<random>` database on the local server, dropped afterwards), with
// the consumer group on the real local Redis under a private key prefix.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { decodeTaskEventsEntry as parseEventFields } from '@neuroagent/contracts';
import {
  connectRedis,
  createLogger,
  createTaskWriter,
  newTaskId,
  type Redis,
  type SubmittedMeta,
  ValidationError,
} from '@neuroagent/platform';
import { TEST_REDIS_URL, testNamespace, waitFor } from '@neuroagent/platform/testing';
import { type LedgerConsumer, startLedgerConsumer } from '../src/ledger/events-consumer.ts';
import {
  decodeCursor,
  inputDigest,
  type Ledger,
  type LedgerEvent,
  openLedger,
  pairStartsWithEnds,
} from '../src/ledger/ledger.ts';
import { type DbSettings, dbTarget } from '../src/ledger/settings.ts';
import { createSubmissionBatcher } from '../src/ledger/submission-batcher.ts';
import { createPostgresDatabase } from './postgres-db.ts';

const log = createLogger('ledger-test', 'silent');

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

interface TestDb {
  settings: Pick<DbSettings, 'url' | 'debug'>;
  drop(): Promise<void>;
}

async function sqliteDb(): Promise<TestDb> {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
  return {
    settings: { url: `sqlite:${join(dir, 'nested', 'ledger.sqlite')}`, debug: false },
    drop: () => rm(dir, { recursive: true, force: true }),
  };
}

async function postgresDb(): Promise<TestDb> {
  const db = await createPostgresDatabase('ledger');
  return { settings: { url: db.url, debug: false }, drop: db.drop };
}

const SQLITE_DESC_INDEXES = [
  'tasks_owner_submitted_idx',
  'tasks_submitted_idx',
  'audit_log_actor_idx',
  'audit_log_action_idx',
  'threads_owner_id_idx',
  'turns_thread_started_idx',
];

/** Schema differences between the entity and the migrated database; [] when they agree. */
async function schemaDrift(ledger: Ledger): Promise<string[]> {
  const sql = await ledger.orm.schema.getUpdateSchemaSQL({ wrap: false });
  return sql
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && !s.startsWith('set names'))
    .filter(
      // MikroORM's SQLite introspection reads indexes with `pragma index_info`, which has no sort
      // order, so it always reports the DESC indexes as changed; checked directly below.
      (s) => !(ledger.dialect === 'sqlite' && SQLITE_DESC_INDEXES.some((name) => s.includes(name))),
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function submitted(owner: string, at: Date, extra: { queue?: string; id?: string } = {}) {
  return {
    id: extra.id ?? newTaskId(at.getTime()),
    owner,
    queue: extra.queue ?? 'python_q',
    task: extra.queue === 'circuit_q' ? 'circuit_population_analysis' : 'run_python',
    submittedAt: at.toISOString(),
    inputDigest: inputDigest({ python_script: `print(${at.getTime()})` }),
  };
}

/** Wraps a ledger to count applyEvent calls per `<task>/<status>` and per consumer. */
function countingLedger(
  ledger: Ledger,
  counts: Map<string, number>,
  label: string,
  perConsumer: Map<string, number>,
) {
  const count = (event: LedgerEvent) => {
    const key = `${event.taskId}/${event.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    perConsumer.set(label, (perConsumer.get(label) ?? 0) + 1);
  };
  return {
    async applyEvent(event: LedgerEvent) {
      const result = await ledger.applyEvent(event);
      count(event);
      return result;
    },
    async applyEvents(events: LedgerEvent[]) {
      const results = await ledger.applyEvents(events);
      for (const e of events) count(e);
      return results;
    },
  };
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------
// The suite, once per dialect
// ---------------------------------------------------------------------------------------------

for (const [dialect, makeDb] of [
  ['sqlite', sqliteDb],
  ['postgresql', postgresDb],
] as const) {
  describe(`task ledger (${dialect})`, () => {
    let db: TestDb;
    let ledger: Ledger;

    before(async () => {
      db = await makeDb();
      ledger = await openLedger(db.settings, log);
    });

    after(async () => {
      await ledger?.close();
      await db?.drop();
    });

    describe('migrations', () => {
      it('applies the checked-in migrations on an empty database, matching the entity', async () => {
        assert.equal(ledger.dialect, dialect);
        const executed = await ledger.orm.migrator.getExecuted();
        assert.deepEqual(
          executed.map((m) => m.name),
          ['0001-create-tasks', '0002-admin', '0003-agent'],
        );
        assert.deepEqual(await schemaDrift(ledger), []);
        if (dialect === 'sqlite') {
          type IndexColumn = { name: string; desc: number; key: number };
          const keyColumns = async (index: string) => {
            const cols: IndexColumn[] = await ledger.orm.em
              .fork()
              .getConnection()
              .execute(`pragma index_xinfo(\`${index}\`)`);
            return cols.filter((c) => c.key === 1).map((c) => [c.name, c.desc]);
          };
          assert.deepEqual(await keyColumns('tasks_owner_submitted_idx'), [
            ['owner', 0],
            ['submitted_at', 1],
            ['id', 1],
          ]);
          assert.deepEqual(await keyColumns('tasks_submitted_idx'), [
            ['submitted_at', 1],
            ['id', 1],
          ]);
          assert.deepEqual(await keyColumns('audit_log_actor_idx'), [
            ['actor', 0],
            ['id', 1],
          ]);
          assert.deepEqual(await keyColumns('audit_log_action_idx'), [
            ['action', 0],
            ['id', 1],
          ]);
          assert.deepEqual(await keyColumns('threads_owner_id_idx'), [
            ['owner', 0],
            ['id', 1],
          ]);
          assert.deepEqual(await keyColumns('turns_thread_started_idx'), [
            ['thread_id', 0],
            ['started_at', 1],
          ]);
        }
      });

      it('is idempotent: a second open applies nothing and keeps the rows', async () => {
        const task = submitted('reopen', new Date());
        await ledger.recordSubmitted(task);
        await ledger.close();
        ledger = await openLedger(db.settings, log);
        assert.deepEqual(await ledger.orm.migrator.getPending(), []);
        assert.equal((await ledger.orm.migrator.getExecuted()).length, 3);
        assert.equal((await ledger.get(task.id))?.owner, 'reopen');
      });
    });

    describe('recordSubmitted / get', () => {
      it('stores a pending row that get() returns with snake_case fields', async () => {
        const at = new Date('2026-01-02T03:04:05.678Z');
        const task = submitted('alice', at);
        await ledger.recordSubmitted(task);
        const row = await ledger.get(task.id);
        assert.deepEqual(
          { ...row, updated_at: undefined },
          {
            id: task.id,
            owner: 'alice',
            queue: 'python_q',
            task: 'run_python',
            status: 'pending',
            submitted_at: '2026-01-02T03:04:05.678Z',
            started_at: null,
            finished_at: null,
            attempts: 0,
            error_code: null,
            token_consumption: null,
            storage_ids: [],
            input_digest: task.inputDigest,
            updated_at: undefined,
          },
        );
        assert.match(task.inputDigest, /^[0-9a-f]{64}$/);
      });

      it('returns null for an unknown id, and a repeated submit changes nothing', async () => {
        assert.equal(await ledger.get(newTaskId()), null);
        const task = submitted('bob', new Date());
        await ledger.recordSubmitted(task);
        await ledger.recordSubmitted({ ...task, owner: 'mallory' });
        assert.equal((await ledger.get(task.id))?.owner, 'bob');
      });

      it('hashes the canonical input: key order does not matter', () => {
        assert.equal(
          inputDigest({ a: 1, b: { c: [1, 2], d: 'x' } }),
          inputDigest({ b: { d: 'x', c: [1, 2] }, a: 1 }),
        );
        assert.notEqual(inputDigest({ a: 1 }), inputDigest({ a: 2 }));
      });
    });

    describe('applyEvent', () => {
      it('moves pending → running → succeeded and ignores a late running', async () => {
        const task = submitted('carol', new Date('2026-02-01T00:00:00Z'));
        await ledger.recordSubmitted(task);
        const started = '2026-02-01T00:00:01.000Z';
        const finished = '2026-02-01T00:00:03.500Z';
        assert.equal(
          await ledger.applyEvent({ taskId: task.id, status: 'running', ts: started, attempt: 1 }),
          'applied',
        );
        assert.equal((await ledger.get(task.id))?.status, 'running');
        assert.equal(
          await ledger.applyEvent({
            taskId: task.id,
            status: 'succeeded',
            ts: finished,
            tokenConsumption: { input: 10, output: 20 },
            storageIds: ['s1', 's2'],
          }),
          'applied',
        );
        // Redelivered and out-of-order events are harmless.
        assert.equal(
          await ledger.applyEvent({ taskId: task.id, status: 'running', ts: started, attempt: 2 }),
          'ignored',
        );
        assert.equal(
          await ledger.applyEvent({ taskId: task.id, status: 'succeeded', ts: finished }),
          'ignored',
        );
        assert.equal(
          await ledger.applyEvent({ taskId: task.id, status: 'failed', ts: finished, code: 'internal' }),
          'ignored',
        );
        const row = await ledger.get(task.id);
        assert.equal(row?.status, 'succeeded');
        assert.equal(row?.started_at, started);
        assert.equal(row?.finished_at, finished);
        assert.equal(row?.attempts, 1);
        assert.equal(row?.error_code, null);
        assert.deepEqual(row?.token_consumption, { input: 10, output: 20 });
        assert.deepEqual(row?.storage_ids, ['s1', 's2']);
      });

      it('records a failure code and the latest attempt, never an older one', async () => {
        const task = submitted('carol', new Date());
        await ledger.recordSubmitted(task);
        const ts = new Date().toISOString();
        await ledger.applyEvent({ taskId: task.id, status: 'running', ts, attempt: 2 });
        assert.equal(
          await ledger.applyEvent({ taskId: task.id, status: 'running', ts, attempt: 1 }),
          'ignored',
        );
        await ledger.applyEvent({
          taskId: task.id,
          status: 'failed',
          ts,
          code: 'max_deliveries',
          attempt: 3,
        });
        const row = await ledger.get(task.id);
        assert.equal(row?.status, 'failed');
        assert.equal(row?.error_code, 'max_deliveries');
        assert.equal(row?.attempts, 3);
      });

      it('keeps events of a task submitted outside the gateway under owner "" until its submit arrives', async () => {
        const id = newTaskId();
        const ts = new Date().toISOString();
        assert.equal(await ledger.applyEvent({ taskId: id, status: 'running', ts, attempt: 1 }), 'created');
        const orphan = await ledger.get(id);
        assert.equal(orphan?.owner, '');
        assert.equal(orphan?.status, 'running');
        await ledger.recordSubmitted({ ...submitted('dave', new Date(ts)), id });
        const row = await ledger.get(id);
        assert.equal(row?.owner, 'dave');
        assert.equal(row?.status, 'running', 'the submit never moves the status back to pending');
      });

      it('creates the row of a task it never recorded (a replay) under the owner its event names', async () => {
        const id = newTaskId();
        const submittedAt = '2026-03-01T10:00:00.000Z';
        const ts = '2026-03-01T10:00:02.000Z';
        const event: LedgerEvent = {
          taskId: id,
          status: 'running',
          ts,
          attempt: 1,
          queue: 'echo_q',
          task: 'echo',
          owner: 'ivan',
          submittedAt,
        };
        assert.equal(await ledger.applyEvent(event), 'created');
        const row = await ledger.get(id);
        assert.equal(row?.owner, 'ivan');
        assert.equal(row?.queue, 'echo_q');
        assert.equal(row?.task, 'echo');
        assert.equal(row?.submitted_at, submittedAt);
        assert.equal(row?.started_at, ts);
        assert.ok(
          (await ledger.list('ivan')).items.some((t) => t.id === id),
          'listed for ivan',
        );
        assert.ok(!(await ledger.list('')).items.some((t) => t.id === id), 'not an owner-less row');
        // Its submit, when there is one (an event that overtook it), still adds the input digest.
        const task = { ...submitted('ivan', new Date(submittedAt)), id, queue: 'echo_q', task: 'echo' };
        await ledger.recordSubmitted(task);
        assert.equal((await ledger.get(id))?.input_digest, task.inputDigest);
        assert.equal((await ledger.get(id))?.status, 'running');
      });
    });

    describe('batches', () => {
      it('records many submissions in one INSERT, completing a row an event created first', async () => {
        const tasks = Array.from({ length: 20 }, (_, i) => submitted('hiro', new Date(Date.now() + i)));
        const early = tasks[7];
        assert.ok(early);
        await ledger.applyEvent({
          taskId: early.id,
          status: 'running',
          ts: new Date().toISOString(),
          attempt: 1,
        });
        await ledger.recordSubmittedMany(tasks);
        for (const t of tasks) {
          const row = await ledger.get(t.id);
          assert.equal(row?.owner, 'hiro');
          assert.equal(row?.input_digest, t.inputDigest);
          assert.equal(row?.status, t === early ? 'running' : 'pending');
        }
      });

      it('applies a batch of events in order, exactly as one by one would', async () => {
        const [a, b] = [submitted('ivy', new Date()), submitted('ivy', new Date())];
        await ledger.recordSubmittedMany([a, b]);
        const ts = () => new Date().toISOString();
        const unknown = newTaskId();
        const results = await ledger.applyEvents([
          { taskId: a.id, status: 'running', ts: ts(), attempt: 1 },
          { taskId: a.id, status: 'succeeded', ts: ts(), attempt: 1 },
          { taskId: b.id, status: 'running', ts: ts(), attempt: 1 },
          { taskId: b.id, status: 'failed', ts: ts(), attempt: 1, code: 'boom' },
          { taskId: a.id, status: 'running', ts: ts(), attempt: 1 },
          {
            taskId: unknown,
            status: 'running',
            ts: ts(),
            attempt: 1,
            owner: 'ivy',
            queue: 'echo_q',
            task: 'echo',
          },
        ]);
        assert.deepEqual(results, ['applied', 'applied', 'applied', 'applied', 'ignored', 'created']);
        assert.equal((await ledger.get(a.id))?.status, 'succeeded');
        assert.equal((await ledger.get(b.id))?.error_code, 'boom');
        assert.equal((await ledger.get(unknown))?.owner, 'ivy');
      });

      it('applies a start and end pair as one statement only when one by one would apply both', async () => {
        const t = submitted('ivy', new Date());
        await ledger.recordSubmittedMany([t]);
        const ts = (ms: number) => new Date(Date.parse('2026-01-01T00:00:00Z') + ms).toISOString();
        // Attempt 3 is already running when attempt 2's start and end arrive together.
        await ledger.applyEvent({ taskId: t.id, status: 'running', ts: ts(3000), attempt: 3 });
        const results = await ledger.applyEvents([
          { taskId: t.id, status: 'running', ts: ts(2000), attempt: 2 },
          { taskId: t.id, status: 'succeeded', ts: ts(4000) },
        ]);
        assert.deepEqual(results, ['ignored', 'applied']);
        const row = await ledger.get(t.id);
        assert.equal(row?.status, 'succeeded');
        assert.equal(row?.attempts, 3, 'never back to an older attempt');
        assert.equal(row?.started_at, ts(3000));
        assert.equal(row?.finished_at, ts(4000));

        const u = submitted('ivy', new Date());
        await ledger.recordSubmittedMany([u]);
        assert.deepEqual(
          await ledger.applyEvents([
            { taskId: u.id, status: 'running', ts: ts(1000), attempt: 2 },
            { taskId: u.id, status: 'failed', ts: ts(5000), code: 'boom' },
          ]),
          ['applied', 'applied'],
        );
        const merged = await ledger.get(u.id);
        assert.deepEqual(
          [merged?.status, merged?.attempts, merged?.started_at, merged?.finished_at, merged?.error_code],
          ['failed', 2, ts(1000), ts(5000), 'boom'],
        );
      });

      it("pairs each start with the same task's next event only when that one is terminal", () => {
        const e = (taskId: string, status: LedgerEvent['status']): LedgerEvent => ({
          taskId,
          status,
          ts: '',
        });
        const pairs = pairStartsWithEnds([
          e('a', 'running'), // 0: paired with 3
          e('b', 'running'), // 1: followed by another start of b: not paired
          e('b', 'running'), // 2: paired with 4
          e('a', 'succeeded'), // 3
          e('b', 'failed'), // 4
          e('c', 'succeeded'), // 5: no start in the batch
          e('d', 'running'), // 6: no end in the batch
        ]);
        assert.deepEqual(
          [...pairs.entries()],
          [
            [0, 3],
            [2, 4],
          ],
        );
      });

      it('creates and then completes an unknown task within one batch', async () => {
        const id = newTaskId();
        const ts = new Date().toISOString();
        const results = await ledger.applyEvents([
          { taskId: id, status: 'running', ts, attempt: 1, owner: 'jo', queue: 'echo_q', task: 'echo' },
          { taskId: id, status: 'succeeded', ts, attempt: 1, owner: 'jo', queue: 'echo_q', task: 'echo' },
        ]);
        assert.equal(results.length, 2);
        assert.equal((await ledger.get(id))?.status, 'succeeded');
      });

      it('batches concurrent submissions through the submission batcher, each waiting for its row', async () => {
        let statements = 0;
        const batcher = createSubmissionBatcher({
          recordSubmittedMany: async (tasks) => {
            statements++;
            await ledger.recordSubmittedMany(tasks);
          },
        });
        const tasks = Array.from({ length: 50 }, () => submitted('kai', new Date()));
        await Promise.all(
          tasks.map(async (t) => {
            await batcher.recordSubmitted(t);
            assert.equal((await ledger.get(t.id))?.owner, 'kai', 'the row exists when the caller resumes');
          }),
        );
        assert.ok(statements < 5, `${statements} INSERTs for 50 concurrent submissions`);
      });
    });

    describe('list', () => {
      const base = Date.parse('2025-06-01T00:00:00Z');
      const mine: string[] = [];

      before(async () => {
        // 7 tasks for erin, two of them with the same submitted_at (ordered by id), 2 for frank.
        const times = [0, 1000, 2000, 2000, 3000, 4000, 5000];
        for (const [i, dt] of times.entries()) {
          const task = submitted('erin', new Date(base + dt), {
            queue: i % 2 === 0 ? 'python_q' : 'circuit_q',
            id: `erin-${i}`,
          });
          await ledger.recordSubmitted(task);
          mine.push(task.id);
        }
        await ledger.applyEvent({ taskId: 'erin-5', status: 'succeeded', ts: new Date().toISOString() });
        for (const dt of [1500, 6000]) await ledger.recordSubmitted(submitted('frank', new Date(base + dt)));
      });

      it("pages newest first with an opaque cursor, only the owner's rows", async () => {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await ledger.list('erin', { limit: 3, cursor });
          seen.push(...page.items.map((t) => t.id));
          assert.ok(page.items.every((t) => t.owner === 'erin'));
          cursor = page.next_cursor ?? undefined;
          pages++;
        } while (cursor !== undefined);
        assert.equal(pages, 3);
        assert.deepEqual(seen, ['erin-6', 'erin-5', 'erin-4', 'erin-3', 'erin-2', 'erin-1', 'erin-0']);
      });

      it('filters by status and by queue', async () => {
        const done = await ledger.list('erin', { status: 'succeeded' });
        assert.deepEqual(
          done.items.map((t) => t.id),
          ['erin-5'],
        );
        assert.equal(done.next_cursor, null);
        const circuit = await ledger.list('erin', { queue: 'circuit_q', limit: 2 });
        assert.deepEqual(
          circuit.items.map((t) => t.id),
          ['erin-5', 'erin-3'],
        );
        const rest = await ledger.list('erin', {
          queue: 'circuit_q',
          limit: 2,
          cursor: circuit.next_cursor ?? '',
        });
        assert.deepEqual(
          rest.items.map((t) => t.id),
          ['erin-1'],
        );
        assert.equal(rest.next_cursor, null);
        assert.deepEqual((await ledger.list('nobody')).items, []);
      });

      it('caps the limit at 100 and rejects a forged cursor with ValidationError', async () => {
        const page = await ledger.list('erin', { limit: 1000 });
        assert.equal(page.items.length, 7);
        await assert.rejects(ledger.list('erin', { cursor: 'not-a-cursor' }), ValidationError);
        assert.throws(() => decodeCursor(Buffer.from('x|').toString('base64url')), ValidationError);
      });
    });

    describe('events consumer (real Redis)', () => {
      // A fresh namespace (so a fresh `tasks:events` stream) per test.
      let ns = testNamespace(`ledger_${dialect}`);
      const prefixes: string[] = [];
      const connections: Redis[] = [];
      const connect = (name: string) => {
        const redis = connectRedis(TEST_REDIS_URL, name, log);
        connections.push(redis);
        return redis;
      };
      const meta: SubmittedMeta = {
        owner: 'gina',
        queue: 'python_q',
        task: 'run_python',
        submittedAt: new Date().toISOString(),
      };
      let commands: Redis;
      const consumers: LedgerConsumer[] = [];
      const store = () =>
        createTaskWriter(commands, { names: ns.names, ttlS: 600, progressMaxLen: 100, eventsMaxLen: 10_000 });
      const pendingCount = async (group = 'ledger') => {
        const summary = (await commands.xpending(ns.names.eventsKeys()[0] as string, group)) as [
          number,
          ...unknown[],
        ];
        return summary[0];
      };

      before(() => {
        commands = connectRedis(TEST_REDIS_URL, 'ledger-test', log);
      });

      beforeEach(() => {
        ns = testNamespace(`ledger_${dialect}`);
        prefixes.push(ns.keyPrefix);
      });

      after(async () => {
        for (const c of consumers) await c.stop();
        // Consumers left "dead" on purpose hang in applyEvent; their connections must still close.
        for (const r of connections) r.disconnect();
        // Only Redis keys: this suite creates no NATS streams (cleanupNamespace needs a NATS connection).
        for (const prefix of prefixes) {
          let cursor = '0';
          do {
            const [next, keys] = await commands.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
            cursor = next;
            if (keys.length > 0) await commands.del(...keys);
          } while (cursor !== '0');
        }
        commands.disconnect();
      });

      it('applies each of 50 events exactly once across two consumers of one group', async () => {
        const counts = new Map<string, number>();
        const perConsumer = new Map<string, number>();
        for (const name of ['g1', 'g2']) {
          consumers.push(
            await startLedgerConsumer({
              redis: connect(`ledger-${name}`),
              names: ns.names,
              ledger: countingLedger(ledger, counts, name, perConsumer),
              consumer: `${ns.id}-${name}`,
              log,
              blockMs: 200,
              batchSize: 5,
            }),
          );
        }
        // 25 tasks × (running, succeeded), written exactly as the worker writes them.
        const ids = Array.from({ length: 25 }, () => newTaskId());
        for (const id of ids) await ledger.recordSubmitted({ ...submitted('gina', new Date()), id });
        for (const id of ids) {
          await store().begin(id, meta, 1, 'w1', true);
          await store().writeOutcome(id, meta, {
            status: 'succeeded',
            result: { ok: true },
            finished_at: new Date().toISOString(),
            attempts: 1,
          });
        }
        await waitFor(
          async () => sum(counts) >= 50 && (await pendingCount()) === 0,
          10_000,
          '50 applied events',
        );
        await new Promise((r) => setTimeout(r, 400)); // a duplicate delivery would show up here
        assert.equal(sum(counts), 50);
        assert.equal(counts.size, 50);
        assert.ok([...counts.values()].every((n) => n === 1));
        for (const id of ids) assert.equal((await ledger.get(id))?.status, 'succeeded');
        assert.equal(await pendingCount(), 0);
      });

      it("records a task the gateway never saw (a replay) under the owner of the worker's events", async () => {
        consumers.push(
          await startLedgerConsumer({
            redis: connect('ledger-replay'),
            names: ns.names,
            ledger,
            consumer: `${ns.id}-replay`,
            log,
            blockMs: 200,
          }),
        );
        const id = newTaskId();
        const replayMeta: SubmittedMeta = { ...meta, owner: 'hana', queue: 'echo_q', task: 'echo' };
        // Exactly what the worker writes for a task published straight to JetStream.
        await store().begin(id, replayMeta, 1, 'w1', true);
        await store().writeOutcome(id, replayMeta, {
          status: 'succeeded',
          result: { attempt: 1 },
          finished_at: new Date().toISOString(),
          attempts: 1,
        });
        const row = await waitFor(
          async () => {
            const r = await ledger.get(id);
            return r?.status === 'succeeded' ? r : null;
          },
          10_000,
          'the replayed task in the ledger',
        );
        assert.equal(row.owner, 'hana');
        assert.equal(row.queue, 'echo_q');
        assert.equal(row.task, 'echo');
        assert.equal(row.submitted_at, new Date(replayMeta.submittedAt).toISOString());
        assert.ok((await ledger.list('hana')).items.some((t) => t.id === id));
      });

      it('lingers after a small batch, so events arriving one by one are written in batches', async () => {
        let writes = 0;
        let events = 0;
        consumers.push(
          await startLedgerConsumer({
            redis: connect('ledger-linger'),
            names: ns.names,
            group: 'linger',
            ledger: {
              applyEvent: async (e) => {
                const result = await ledger.applyEvent(e);
                writes++;
                events++;
                return result;
              },
              applyEvents: async (es) => {
                const results = await ledger.applyEvents(es);
                writes++;
                events += es.length;
                return results;
              },
            },
            consumer: `${ns.id}-linger`,
            log,
            blockMs: 200,
            lingerMs: 400,
          }),
        );
        await new Promise((r) => setTimeout(r, 300)); // the group exists and the first read is blocked
        const ids = Array.from({ length: 10 }, () => newTaskId());
        for (const id of ids) {
          await store().begin(id, meta, 1, 'w1', true);
          await new Promise((r) => setTimeout(r, 20));
        }
        await waitFor(async () => events === 10, 5000, 'the 10 events applied');
        assert.ok(writes <= 3, `${writes} ledger writes for 10 events arriving 20 ms apart`);
        for (const id of ids) assert.equal((await ledger.get(id))?.status, 'running');
      });

      it('reprocesses its own pending entries when restarted under the same name', async () => {
        const group = 'restart';
        const stuck = Promise.withResolvers<never>();
        const first = connect('ledger-first');
        const id = newTaskId();
        await ledger.recordSubmitted({ ...submitted('gina', new Date()), id });
        // Written before the group exists: the group starts at 0, so it is still delivered.
        await store().begin(id, meta, 1, 'w1', true);
        await startLedgerConsumer({
          redis: first,
          names: ns.names,
          ledger: { applyEvent: () => stuck.promise, applyEvents: () => stuck.promise }, // hangs like a process frozen mid-write
          group,
          consumer: `${ns.id}-same`,
          log,
          blockMs: 100,
        });
        await waitFor(
          async () => (await pendingCount(group)) === 1,
          5000,
          'an entry pending on the first run',
        );
        first.disconnect(); // the process "dies" without acking

        const counts = new Map<string, number>();
        consumers.push(
          await startLedgerConsumer({
            redis: connect('ledger-second'),
            names: ns.names,
            ledger: countingLedger(ledger, counts, 'second', new Map()),
            group,
            consumer: `${ns.id}-same`,
            log,
            blockMs: 100,
          }),
        );
        await waitFor(async () => (await pendingCount(group)) === 0, 5000, 'the pending entry re-applied');
        assert.equal(counts.get(`${id}/running`), 1);
        assert.equal((await ledger.get(id))?.status, 'running');
      });

      it('hands the pending entries of a dead consumer to a live one (XAUTOCLAIM)', async () => {
        const group = 'failover';
        const stuck = Promise.withResolvers<never>();
        const doomedRedis = connect('ledger-doomed');
        const ids = Array.from({ length: 10 }, () => newTaskId());
        for (const id of ids) await store().begin(id, meta, 1, 'w1', true);
        await startLedgerConsumer({
          redis: doomedRedis,
          names: ns.names,
          ledger: { applyEvent: () => stuck.promise, applyEvents: () => stuck.promise },
          group,
          consumer: `${ns.id}-doomed`,
          log,
          blockMs: 100,
        });
        await waitFor(
          async () => (await pendingCount(group)) === 10,
          5000,
          'the doomed consumer holding 10 entries',
        );
        doomedRedis.disconnect();

        const counts = new Map<string, number>();
        const perConsumer = new Map<string, number>();
        consumers.push(
          await startLedgerConsumer({
            redis: connect('ledger-survivor'),
            names: ns.names,
            ledger: countingLedger(ledger, counts, 'survivor', perConsumer),
            group,
            consumer: `${ns.id}-survivor`,
            log,
            blockMs: 100,
            claimIdleMs: 300,
            claimEveryMs: 100,
          }),
        );
        await waitFor(async () => (await pendingCount(group)) === 0, 10_000, 'the survivor to claim and ack');
        assert.equal(sum(counts), 10);
        assert.ok(ids.every((id) => counts.get(`${id}/running`) === 1));
        for (const id of ids) {
          const row = await ledger.get(id);
          assert.equal(row?.owner, 'gina', 'a task never submitted through the gateway gets its event owner');
          assert.equal(row?.status, 'running');
        }
      });
    });
  });
}

describe('ledger settings and event parsing', () => {
  it('selects SQLite by default, `sqlite:<path>` and PostgreSQL by URL', () => {
    assert.deepEqual(dbTarget({ url: '' }), {
      dialect: 'sqlite',
      path: '.data/neuroagent.sqlite',
    });
    assert.deepEqual(dbTarget({ url: 'sqlite:/tmp/x.db' }), {
      dialect: 'sqlite',
      path: '/tmp/x.db',
    });
    assert.deepEqual(dbTarget({ url: 'sqlite:///tmp/x.db' }), {
      dialect: 'sqlite',
      path: '/tmp/x.db',
    });
    assert.equal(dbTarget({ url: 'postgresql://u@h/db' }).dialect, 'postgresql');
  });

  it('parses a worker event and rejects one without a valid task id or status', () => {
    assert.deepEqual(
      parseEventFields('1700000000000-0', [
        'task_id',
        't1',
        'status',
        'failed',
        'ts',
        'bad',
        'code',
        'expired',
      ]),
      { taskId: 't1', status: 'failed', ts: '2023-11-14T22:13:20.000Z', code: 'expired' },
    );
    assert.deepEqual(
      parseEventFields('1-0', ['task_id', 't1', 'status', 'running', 'ts', 'x', 'attempt', '2']),
      {
        taskId: 't1',
        status: 'running',
        ts: new Date(1).toISOString(),
        attempt: 2,
      },
    );
    assert.deepEqual(
      parseEventFields('1-0', [
        'task_id',
        't1',
        'status',
        'running',
        'ts',
        '2026-01-01T00:00:01.000Z',
        'queue',
        'echo_q',
        'task',
        'echo',
        'owner',
        'alice',
        'submitted_at',
        '2026-01-01T00:00:00.000Z',
      ]),
      {
        taskId: 't1',
        status: 'running',
        ts: '2026-01-01T00:00:01.000Z',
        queue: 'echo_q',
        task: 'echo',
        owner: 'alice',
        submittedAt: '2026-01-01T00:00:00.000Z',
      },
    );
    // An owner longer than the ledger column is dropped, never cut into another name.
    assert.equal(
      parseEventFields('1-0', ['task_id', 't1', 'status', 'running', 'owner', 'x'.repeat(256)])?.owner,
      undefined,
    );
    assert.equal(parseEventFields('1-0', ['task_id', 'a b', 'status', 'running']), null);
    assert.equal(parseEventFields('1-0', ['task_id', 't1', 'status', 'done']), null);
  });
});

describe('SQLite ledger file settings', () => {
  it('runs in WAL mode with the configured synchronous level', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-pragma-'));
    try {
      for (const [level, expected] of [
        ['normal', 1],
        ['full', 2],
      ] as const) {
        const ledger = await openLedger(
          { url: `sqlite:${join(dir, `${level}.sqlite`)}`, debug: false, sqlite_synchronous: level },
          log,
        );
        const connection = ledger.orm.em.getConnection();
        const [mode] = (await connection.execute('PRAGMA journal_mode')) as { journal_mode: string }[];
        const [sync] = (await connection.execute('PRAGMA synchronous')) as { synchronous: number }[];
        assert.equal(mode?.journal_mode, 'wal');
        assert.equal(sync?.synchronous, expected);
        await ledger.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
