// The agent's thread store on the migrated ledger database. The same suite runs against SQLite (a
// temp file) and PostgreSQL (a fresh `threads_<random>` database on the local server, dropped
// afterwards), since the turn claim is a compare-and-set whose behaviour is the database's.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TokenUsage } from '@neuroagent/contracts';
import { createLogger, newTaskId, ValidationError } from '@neuroagent/platform';
import {
  createThreadStore,
  DEFAULT_THREAD_TITLE,
  type StartedTurn,
  type StartResult,
  type ThreadStore,
  TurnLostError,
} from '../src/agent/thread-store.ts';
import { type Ledger, openLedger } from '../src/ledger/ledger.ts';
import type { DbSettings } from '../src/ledger/settings.ts';
import { createPostgresDatabase } from './postgres-db.ts';

const log = createLogger('thread-store-test', 'silent');

interface TestDb {
  settings: Pick<DbSettings, 'url' | 'debug'>;
  drop(): Promise<void>;
}

async function sqliteDb(): Promise<TestDb> {
  const dir = await mkdtemp(join(tmpdir(), 'threads-'));
  return {
    settings: { url: `sqlite:${join(dir, 'ledger.sqlite')}`, debug: false },
    drop: () => rm(dir, { recursive: true, force: true }),
  };
}

async function postgresDb(): Promise<TestDb> {
  const db = await createPostgresDatabase('threads');
  return { settings: { url: db.url, debug: false }, drop: db.drop };
}

const MINUTE = 60_000;
const USAGE: TokenUsage = { input_cached: 3, input_noncached: 7, completion: 5, model: 'test-model' };

/** A deadline well in the future, so only an explicit `now` past it makes the turn abandoned. */
const later = (ms = 10 * MINUTE) => new Date(Date.now() + ms);

function started(result: StartResult): StartedTurn {
  assert.equal(typeof result, 'object', `expected a started turn, got ${String(result)}`);
  return result as StartedTurn;
}

// Each test uses its own owner, so tests never see each other's threads.
let owners = 0;
const newOwner = (label: string) => `${label}-${++owners}-${newTaskId().slice(-6)}`;

for (const [dialect, makeDb] of [
  ['sqlite', sqliteDb],
  ['postgresql', postgresDb],
] as const) {
  describe(`thread store (${dialect})`, () => {
    let db: TestDb;
    let ledger: Ledger;
    let store: ThreadStore;

    before(async () => {
      db = await makeDb();
      ledger = await openLedger(db.settings, log);
      assert.equal(ledger.dialect, dialect);
      store = createThreadStore(ledger.orm);
    });

    after(async () => {
      await ledger?.close();
      await db?.drop();
    });

    /** A thread with a running turn; `count` is 1 (the user's message). */
    async function runningThread(owner: string, deadline = later()) {
      const thread = await store.create(owner);
      const turn = started(await store.startTurn(owner, thread.id, 'hello', deadline));
      return { thread, started: turn };
    }

    describe('threads', () => {
      it('creates a thread with the default or a given title, and gets it back', async () => {
        const owner = newOwner('create');
        const plain = await store.create(owner);
        assert.equal(plain.title, DEFAULT_THREAD_TITLE);
        assert.equal(plain.turn, null);
        assert.equal(plain.created_at, plain.updated_at);
        const named = await store.create(owner, 'Spikes');
        assert.equal(named.title, 'Spikes');
        assert.notEqual(named.id, plain.id);

        assert.deepEqual(await store.get(owner, plain.id), plain);
        assert.deepEqual(await store.get(owner, named.id), named);
        assert.equal(await store.get(owner, newTaskId()), null);
      });

      it("is owner-scoped: another owner's thread is as absent as an unknown one", async () => {
        const owner = newOwner('alice');
        const other = newOwner('mallory');
        const thread = await store.create(owner, 'Private');
        const { started: turn } = await runningThread(owner);

        assert.equal(await store.get(other, thread.id), null);
        assert.deepEqual(await store.list(other), { items: [], next_cursor: null });
        assert.equal(await store.rename(other, thread.id, 'Stolen'), null);
        assert.equal((await store.get(owner, thread.id))?.title, 'Private');
        assert.equal(await store.remove(other, thread.id), 'not_found');
        assert.equal(await store.messages(other, turn.turn.thread_id), null);
        assert.equal(await store.startTurn(other, thread.id, 'hi', later()), 'not_found');
        assert.equal(await store.turn(other, turn.turn.id), null);
        assert.equal(await store.activeTurn(other, turn.turn.thread_id), null);
        // The owner still sees everything.
        assert.equal((await store.list(owner)).items.length, 2);
        assert.equal((await store.turn(owner, turn.turn.id))?.id, turn.turn.id);
      });

      it('lists newest first (id desc) and pages with the cursor', async () => {
        const owner = newOwner('pager');
        const created = [];
        for (let i = 0; i < 5; i++) created.push(await store.create(owner, `t${i}`));
        const ids = created
          .map((t) => t.id)
          .sort()
          .reverse();

        const first = await store.list(owner, { limit: 2 });
        assert.deepEqual(
          first.items.map((t) => t.id),
          ids.slice(0, 2),
        );
        assert.equal(first.next_cursor, ids[1]);
        const second = await store.list(owner, { limit: 2, cursor: first.next_cursor ?? '' });
        assert.deepEqual(
          second.items.map((t) => t.id),
          ids.slice(2, 4),
        );
        assert.equal(second.next_cursor, ids[3]);
        const last = await store.list(owner, { limit: 2, cursor: second.next_cursor ?? '' });
        assert.deepEqual(
          last.items.map((t) => t.id),
          ids.slice(4),
        );
        assert.equal(last.next_cursor, null);
        // Exactly a page's worth: no further page is announced.
        assert.equal((await store.list(owner, { limit: 5 })).next_cursor, null);
        await assert.rejects(store.list(owner, { cursor: 'not a cursor!' }), ValidationError);
      });

      it('shows the latest turn of each listed thread', async () => {
        const owner = newOwner('listturn');
        const idle = await store.create(owner);
        const { thread, started: turn } = await runningThread(owner);
        const { items } = await store.list(owner);
        const byId = new Map(items.map((t) => [t.id, t]));
        assert.equal(byId.get(idle.id)?.turn, null);
        assert.equal(byId.get(thread.id)?.turn?.id, turn.turn.id);
        assert.equal(byId.get(thread.id)?.turn?.status, 'running');
      });

      it('renames a thread', async () => {
        const owner = newOwner('rename');
        const thread = await store.create(owner);
        const renamed = await store.rename(owner, thread.id, 'Renamed');
        assert.equal(renamed?.title, 'Renamed');
        assert.equal(renamed?.id, thread.id);
        assert.equal((await store.get(owner, thread.id))?.title, 'Renamed');
        assert.equal(await store.rename(owner, newTaskId(), 'x'), null);
      });
    });

    describe('turns', () => {
      it("starts a turn: claims the thread and stores the user's message as seq 1", async () => {
        const owner = newOwner('start');
        const thread = await store.create(owner);
        const s = started(await store.startTurn(owner, thread.id, 'What is a spike?', later()));
        assert.equal(s.turn.status, 'running');
        assert.equal(s.turn.thread_id, thread.id);
        assert.equal(s.turn.finished_at, null);
        assert.equal(s.turn.error, null);
        assert.equal(s.count, 1);
        assert.equal(s.userMessage.seq, 1);
        assert.equal(s.userMessage.role, 'user');
        assert.equal(s.userMessage.content, 'What is a spike?');
        assert.equal(s.userMessage.turn_id, s.turn.id);
        assert.deepEqual(await store.turn(owner, s.turn.id), s.turn);
        assert.deepEqual(await store.activeTurn(owner, thread.id), s.turn);
        assert.equal((await store.get(owner, thread.id))?.turn?.id, s.turn.id);
        assert.equal(await store.startTurn(owner, newTaskId(), 'x', later()), 'not_found');
      });

      it("answers 'busy' while a turn runs and its deadline is ahead", async () => {
        const owner = newOwner('busy');
        const { thread, started: s } = await runningThread(owner);
        assert.equal(await store.startTurn(owner, thread.id, 'again', later()), 'busy');
        // Just before the deadline it still runs.
        const deadline = later(5 * MINUTE);
        const t2 = await store.create(owner);
        started(await store.startTurn(owner, t2.id, 'x', deadline));
        assert.equal(
          await store.startTurn(owner, t2.id, 'y', later(), new Date(deadline.getTime() - 1000)),
          'busy',
        );
        // The refused start wrote nothing.
        const page = await store.messages(owner, thread.id);
        assert.deepEqual(
          page?.items.map((m) => m.seq),
          [1],
        );
        assert.equal(page?.turn?.id, s.turn.id);
      });

      it('lets exactly one of two concurrent starts claim the thread', async () => {
        const owner = newOwner('race');
        for (let round = 0; round < 3; round++) {
          const thread = await store.create(owner);
          const results = await Promise.all([
            store.startTurn(owner, thread.id, 'one', later()),
            store.startTurn(owner, thread.id, 'two', later()),
          ]);
          const winners = results.filter((r) => typeof r === 'object');
          assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
          assert.deepEqual(
            results.filter((r) => r === 'busy'),
            ['busy'],
          );
          const page = await store.messages(owner, thread.id);
          assert.equal(page?.items.length, 1);
          assert.equal(page?.turn?.id, started(winners[0] as StartResult).turn.id);
        }
      });

      it('takes over a turn past its deadline and ends it as failed, turn_interrupted', async () => {
        const owner = newOwner('takeover');
        const deadline = later(MINUTE);
        const { thread, started: old } = await runningThread(owner, deadline);
        const now = new Date(deadline.getTime() + 1000);
        const fresh = started(
          await store.startTurn(owner, thread.id, 'still there?', later(20 * MINUTE), now),
        );
        assert.notEqual(fresh.turn.id, old.turn.id);
        assert.equal(fresh.count, 2);
        assert.equal(fresh.userMessage.seq, 2);

        const ended = await store.turn(owner, old.turn.id);
        assert.equal(ended?.status, 'failed');
        assert.equal(ended?.error?.code, 'turn_interrupted');
        assert.equal(ended?.finished_at, now.toISOString());
        assert.deepEqual(await store.activeTurn(owner, thread.id), fresh.turn);

        // The old turn lost its thread: even with the current count, it cannot write.
        await assert.rejects(store.append(old.turn, 2, [{ role: 'assistant', content: 'late' }]), (err) => {
          assert.ok(err instanceof TurnLostError);
          assert.equal(err.code, 'turn_lost');
          return true;
        });
        await assert.rejects(
          store.finishTurn(old.turn, 2, { status: 'completed', rounds: 0, usage: null }, []),
          TurnLostError,
        );
        // The new turn's claim is untouched by the failed writes.
        assert.deepEqual(await store.activeTurn(owner, thread.id), fresh.turn);
        assert.equal((await store.append(fresh.turn, 2, [{ role: 'assistant', content: 'yes' }]))[0]?.seq, 3);
      });

      it('appends messages with seq count+1.. and round-trips every field', async () => {
        const owner = newOwner('append');
        const { thread, started: s } = await runningThread(owner);
        const taskId = newTaskId();
        const [assistant] = await store.append(s.turn, s.count, [
          {
            role: 'assistant',
            content: null,
            toolCalls: [
              { id: 'call_1', name: 'run_python', arguments: '{"python_script":"1"}', task_id: taskId },
            ],
            usage: USAGE,
          },
        ]);
        assert.equal(assistant?.seq, 2);
        const tools = await store.append(s.turn, 2, [
          {
            role: 'tool',
            content: '{"status":"succeeded"}',
            toolCallId: 'call_1',
            taskId,
            toolStatus: 'succeeded',
          },
          {
            role: 'tool',
            content: '{"status":"rejected"}',
            toolCallId: 'call_2',
            toolStatus: 'rejected',
            truncated: true,
          },
        ]);
        assert.deepEqual(
          tools.map((m) => m.seq),
          [3, 4],
        );

        const page = await store.messages(owner, thread.id);
        assert.deepEqual(page?.items.slice(1), [assistant, ...tools]);
        const [, a, t1, t2] = page?.items ?? [];
        assert.deepEqual(a?.tool_calls, [
          { id: 'call_1', name: 'run_python', arguments: '{"python_script":"1"}', task_id: taskId },
        ]);
        assert.equal(a?.content, null);
        assert.deepEqual(a?.usage, USAGE);
        assert.equal(a?.turn_id, s.turn.id);
        assert.equal(t1?.tool_call_id, 'call_1');
        assert.equal(t1?.task_id, taskId);
        assert.equal(t1?.tool_status, 'succeeded');
        assert.equal(t1?.truncated, false);
        assert.deepEqual(t1?.tool_calls, []);
        assert.equal(t1?.usage, null);
        assert.equal(t2?.task_id, null);
        assert.equal(t2?.tool_status, 'rejected');
        assert.equal(t2?.truncated, true);
      });

      it('refuses an append with a stale count (turn_lost) and writes nothing', async () => {
        const owner = newOwner('stale');
        const { thread, started: s } = await runningThread(owner);
        await store.append(s.turn, 1, [{ role: 'assistant', content: 'a' }]);
        for (const count of [1, 0, 3]) {
          await assert.rejects(store.append(s.turn, count, [{ role: 'assistant', content: 'b' }]), (err) => {
            assert.ok(err instanceof TurnLostError);
            assert.equal(err.code, 'turn_lost');
            return true;
          });
        }
        const page = await store.messages(owner, thread.id);
        assert.deepEqual(
          page?.items.map((m) => [m.seq, m.content]),
          [
            [1, 'hello'],
            [2, 'a'],
          ],
        );
        // The right count still works after the refusals.
        assert.equal((await store.append(s.turn, 2, [{ role: 'assistant', content: 'c' }]))[0]?.seq, 3);
      });

      it('finishes a turn: stores its last messages and end, and releases the thread', async () => {
        const owner = newOwner('finish');
        const { thread, started: s } = await runningThread(owner);
        const finished = await store.finishTurn(
          s.turn,
          1,
          { status: 'completed', stop: 'answered', rounds: 2, usage: USAGE },
          [{ role: 'assistant', content: 'The answer', usage: USAGE }],
        );
        assert.equal(finished.turn.id, s.turn.id);
        assert.equal(finished.turn.status, 'completed');
        assert.equal(finished.turn.stop, 'answered');
        assert.equal(finished.turn.rounds, 2);
        assert.deepEqual(finished.turn.usage, USAGE);
        assert.equal(finished.turn.error, null);
        assert.ok(finished.turn.finished_at);
        assert.deepEqual(
          finished.messages.map((m) => [m.seq, m.role, m.content]),
          [[2, 'assistant', 'The answer']],
        );
        assert.deepEqual(await store.turn(owner, s.turn.id), finished.turn);
        assert.equal(await store.activeTurn(owner, thread.id), null);
        assert.deepEqual((await store.get(owner, thread.id))?.turn, finished.turn);
        // Released: the thread's writes are over for that turn, and a new turn starts at once.
        await assert.rejects(store.append(s.turn, 2, [{ role: 'assistant', content: 'x' }]), TurnLostError);
        const next = started(await store.startTurn(owner, thread.id, 'next', later()));
        assert.equal(next.count, 3);
        assert.equal(next.userMessage.seq, 3);
      });

      it("records a failed turn's error", async () => {
        const owner = newOwner('failend');
        const { started: s } = await runningThread(owner);
        const { turn, messages } = await store.finishTurn(s.turn, 1, {
          status: 'failed',
          error: { code: 'llm_error', message: 'the model server answered 500' },
          rounds: 0,
          usage: null,
        });
        assert.deepEqual(messages, []);
        assert.equal(turn.status, 'failed');
        assert.deepEqual(turn.error, { code: 'llm_error', message: 'the model server answered 500' });
        assert.equal(turn.stop, null);
        assert.equal(turn.usage, null);
      });

      it('abandons a running turn once and releases its thread', async () => {
        const owner = newOwner('abandon');
        const { thread, started: s } = await runningThread(owner);
        const end = { status: 'failed' as const, error: { code: 'gateway_shutdown', message: 'gone' } };
        assert.equal(await store.abandon(s.turn.id, end), true);
        assert.equal(await store.abandon(s.turn.id, end), false);
        const turn = await store.turn(owner, s.turn.id);
        assert.equal(turn?.status, 'failed');
        assert.deepEqual(turn?.error, end.error);
        assert.ok(turn?.finished_at);
        assert.equal(await store.activeTurn(owner, thread.id), null);
        started(await store.startTurn(owner, thread.id, 'again', later()));
      });

      it("abandoning an ended turn leaves the thread's new turn alone", async () => {
        const owner = newOwner('abandon2');
        const { thread, started: s } = await runningThread(owner);
        await store.finishTurn(s.turn, 1, { status: 'cancelled', rounds: 0, usage: null });
        const next = started(await store.startTurn(owner, thread.id, 'again', later()));
        assert.equal(await store.abandon(s.turn.id, { status: 'failed' }), false);
        assert.deepEqual(await store.activeTurn(owner, thread.id), next.turn);
        assert.equal((await store.turn(owner, s.turn.id))?.status, 'cancelled');
      });

      it("lists a turn's own messages, in seq order", async () => {
        const owner = newOwner('turnmsgs');
        const { thread, started: first } = await runningThread(owner);
        await store.finishTurn(first.turn, 1, { status: 'completed', rounds: 0, usage: null }, [
          { role: 'assistant', content: 'one' },
        ]);
        const second = started(await store.startTurn(owner, thread.id, 'again', later()));
        await store.append(second.turn, 3, [{ role: 'assistant', content: 'two', toolCalls: [] }]);
        await store.finishTurn(second.turn, 4, { status: 'completed', rounds: 0, usage: null }, [
          { role: 'assistant', content: 'three' },
        ]);
        assert.deepEqual(
          (await store.turnMessages(first.turn.id)).map((m) => [m.seq, m.content]),
          [
            [1, 'hello'],
            [2, 'one'],
          ],
        );
        assert.deepEqual(
          (await store.turnMessages(second.turn.id)).map((m) => [m.seq, m.content]),
          [
            [3, 'again'],
            [4, 'two'],
            [5, 'three'],
          ],
        );
        assert.deepEqual(await store.turnMessages(newTaskId()), []);
      });
    });

    describe('remove', () => {
      it("answers 'busy' while a turn runs, then deletes the thread with its turns and messages", async () => {
        const owner = newOwner('remove');
        const { thread, started: s } = await runningThread(owner);
        await store.append(s.turn, 1, [{ role: 'assistant', content: 'a' }]);
        assert.equal(await store.remove(owner, thread.id), 'busy');
        assert.ok(await store.get(owner, thread.id));
        assert.equal((await store.turnMessages(s.turn.id)).length, 2);

        await store.finishTurn(s.turn, 2, { status: 'completed', rounds: 0, usage: null });
        // Another thread of the owner is not touched.
        const { started: keep } = await runningThread(owner);
        assert.equal(await store.remove(owner, thread.id), 'deleted');
        assert.equal(await store.get(owner, thread.id), null);
        assert.equal(await store.messages(owner, thread.id), null);
        assert.equal(await store.turn(owner, s.turn.id), null);
        assert.deepEqual(await store.turnMessages(s.turn.id), []);
        assert.equal(await store.history(thread.id, 10).then((h) => h.length), 0);
        assert.equal(await store.remove(owner, thread.id), 'not_found');
        assert.equal((await store.turnMessages(keep.turn.id)).length, 1);
        assert.equal((await store.turn(owner, keep.turn.id))?.status, 'running');
      });

      it('deletes a thread whose running turn is past its deadline, and the turn then lost it', async () => {
        const owner = newOwner('removestale');
        const deadline = later(MINUTE);
        const { thread, started: s } = await runningThread(owner, deadline);
        assert.equal(await store.remove(owner, thread.id, new Date(deadline.getTime() - 1000)), 'busy');
        assert.equal(await store.remove(owner, thread.id, new Date(deadline.getTime() + 1000)), 'deleted');
        await assert.rejects(
          store.append(s.turn, 1, [{ role: 'assistant', content: 'late' }]),
          TurnLostError,
        );
        assert.deepEqual(await store.turnMessages(s.turn.id), []);
      });
    });

    describe('messages and history', () => {
      /** A thread with messages seq 1..5: 'hello', then m2..m5. */
      async function fiveMessages(owner: string) {
        const { thread, started: s } = await runningThread(owner);
        await store.append(s.turn, 1, [
          { role: 'assistant', content: 'm2' },
          { role: 'assistant', content: 'm3' },
        ]);
        const { turn } = await store.finishTurn(s.turn, 3, { status: 'completed', rounds: 0, usage: null }, [
          { role: 'assistant', content: 'm4' },
          { role: 'assistant', content: 'm5' },
        ]);
        return { thread, turn };
      }

      it('pages oldest first on the seq cursor, with the latest turn', async () => {
        const owner = newOwner('msgpage');
        const { thread, turn } = await fiveMessages(owner);
        const first = await store.messages(owner, thread.id, { limit: 2 });
        assert.deepEqual(
          first?.items.map((m) => m.seq),
          [1, 2],
        );
        assert.equal(first?.next_cursor, '2');
        assert.deepEqual(first?.turn, turn);
        const second = await store.messages(owner, thread.id, { limit: 2, cursor: '2' });
        assert.deepEqual(
          second?.items.map((m) => m.content),
          ['m3', 'm4'],
        );
        assert.equal(second?.next_cursor, '4');
        const last = await store.messages(owner, thread.id, { limit: 2, cursor: '4' });
        assert.deepEqual(
          last?.items.map((m) => m.seq),
          [5],
        );
        assert.equal(last?.next_cursor, null);
        assert.equal((await store.messages(owner, thread.id, { limit: 5 }))?.next_cursor, null);
        assert.equal(await store.messages(owner, newTaskId()), null);
      });

      it('rejects a cursor that is not a seq', async () => {
        const owner = newOwner('msgcursor');
        const { thread } = await fiveMessages(owner);
        for (const cursor of ['abc', '-1', '1.5', '9999999999', ' 2']) {
          await assert.rejects(store.messages(owner, thread.id, { cursor }), (err) => {
            assert.ok(err instanceof ValidationError, cursor);
            assert.equal(err.code, 'validation_failed');
            return true;
          });
        }
      });

      it('gives the newest `max` messages, oldest first', async () => {
        const owner = newOwner('history');
        const { thread } = await fiveMessages(owner);
        assert.deepEqual(
          (await store.history(thread.id, 3)).map((m) => m.seq),
          [3, 4, 5],
        );
        assert.deepEqual(
          (await store.history(thread.id, 10)).map((m) => m.content),
          ['hello', 'm2', 'm3', 'm4', 'm5'],
        );
        assert.deepEqual(await store.history(newTaskId(), 10), []);
      });
    });
  });
}
