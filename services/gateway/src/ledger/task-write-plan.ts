// What applying tasks:events entries to the ledger means, statement by statement, for both
// dialects: a generator yields each statement (a kind and its parameters) and is sent back how many
// rows it changed (for `exists`, 1 when the row is there), so that SQLite runs the plan
// synchronously inside one better-sqlite3 transaction and PostgreSQL runs it with awaits, from the
// same rules:
//   - a status only moves forward: `running` only from pending/running and never back to an older
//     attempt; the first terminal status wins; the attempt count only grows;
//   - a task's `running` event and its terminal event in one batch are one UPDATE, under both
//     events' conditions (pairStartsWithEnds);
//   - an event for an unknown task creates its row (see ApplyResult); when another gateway created
//     it in the meantime, the event is applied to that row, so no event is lost to the race.
import { isTerminal } from '@neuroagent/contracts';
import {
  type ApplyResult,
  type LedgerEvent,
  pairStartsWithEnds,
  type SubmittedTask,
} from './task-changes.ts';

/** The ledger's hot writes below the ORM, one implementation per dialect. */
export interface TaskWrites {
  /** Several submissions at once; the same outcome as one at a time. */
  recordSubmittedMany(tasks: SubmittedTask[]): Promise<void>;
  /** Events in stream order, in one transaction; the same outcome as one at a time. */
  applyEvents(events: LedgerEvent[]): Promise<ApplyResult[]>;
}

/** A value the event does not carry keeps the column as it is (`set` false). */
interface Carried {
  setTokens: boolean;
  /** JSON text. */
  tokens: string | null;
  setStorage: boolean;
  /** JSON text. */
  storage: string | null;
}

export interface StartParams {
  id: string;
  at: Date;
  attempt: number;
  now: Date;
}

export interface EndParams extends Carried {
  id: string;
  status: string;
  at: Date;
  code: string | null;
  /** Raises the row's attempt count when larger; null keeps it. */
  attempt: number | null;
  now: Date;
}

export interface StartAndEndParams extends Carried {
  id: string;
  status: string;
  startedAt: Date;
  at: Date;
  attempts: number;
  /** The start's attempt: the row must not have seen a later one. */
  startAttempt: number;
  code: string | null;
  now: Date;
}

export interface UnknownRowParams {
  id: string;
  owner: string;
  queue: string;
  task: string;
  status: string;
  submittedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  attempts: number;
  code: string | null;
  tokens: string | null;
  /** JSON text; '[]' when the event names none. */
  storage: string;
  now: Date;
}

export type PlannedStatement =
  | { kind: 'start'; params: StartParams }
  | { kind: 'end'; params: EndParams }
  | { kind: 'startAndEnd'; params: StartAndEndParams }
  | { kind: 'exists'; params: { id: string } }
  | { kind: 'insertUnknown'; params: UnknownRowParams };

export type ApplyPlan = Generator<PlannedStatement, ApplyResult[], number>;

/** An event's time; an unreadable one is `now`. */
export function eventTime(value: string | Date, now: Date): Date {
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? now : d;
}

function carried(event: LedgerEvent): Carried {
  return {
    setTokens: event.tokenConsumption !== undefined,
    tokens: event.tokenConsumption === undefined ? null : JSON.stringify(event.tokenConsumption),
    setStorage: event.storageIds !== undefined,
    storage: event.storageIds === undefined ? null : JSON.stringify(event.storageIds),
  };
}

/** The conditional UPDATE an event makes, or null for a status that changes nothing. */
function updateOf(event: LedgerEvent, now: Date): PlannedStatement | null {
  const at = eventTime(event.ts, now);
  if (event.status === 'running') {
    return { kind: 'start', params: { id: event.taskId, at, attempt: event.attempt ?? 1, now } };
  }
  if (!isTerminal(event.status)) return null;
  return {
    kind: 'end',
    params: {
      id: event.taskId,
      status: event.status,
      at,
      code: event.code ?? null,
      attempt: event.attempt ?? null,
      now,
      ...carried(event),
    },
  };
}

function unknownRow(event: LedgerEvent, now: Date): UnknownRowParams {
  const at = eventTime(event.ts, now);
  const { tokens, storage } = carried(event);
  return {
    id: event.taskId,
    owner: event.owner ?? '',
    queue: event.queue ?? '',
    task: event.task ?? '',
    status: event.status,
    submittedAt: event.submittedAt === undefined ? at : eventTime(event.submittedAt, now),
    startedAt: event.status === 'running' ? at : null,
    finishedAt: isTerminal(event.status) ? at : null,
    attempts: event.attempt ?? (event.status === 'running' ? 1 : 0),
    code: isTerminal(event.status) ? (event.code ?? null) : null,
    tokens,
    storage: storage ?? '[]',
    now,
  };
}

function* applyOne(event: LedgerEvent, now: Date): Generator<PlannedStatement, ApplyResult, number> {
  const update = updateOf(event, now);
  if (update !== null && (yield update) > 0) return 'applied';
  // Another gateway may have created the row since the UPDATE (it applied an earlier event of an
  // unknown task): then the UPDATE runs again on that row, and only what it refuses is ignored.
  if ((yield { kind: 'exists', params: { id: event.taskId } }) === 0) {
    if ((yield { kind: 'insertUnknown', params: unknownRow(event, now) }) > 0) return 'created';
  }
  if (update !== null && (yield update) > 0) return 'applied';
  return 'ignored';
}

/** Events in stream order; returns each one's result once every statement has run. */
export function* applyPlan(events: LedgerEvent[], now: Date): ApplyPlan {
  const results: ApplyResult[] = new Array(events.length);
  const pairs = pairStartsWithEnds(events);
  for (const [i, e] of events.entries()) {
    if (results[i] !== undefined) continue; // the end of a pair, applied with its start
    const j = pairs.get(i);
    const end = j === undefined ? undefined : events[j];
    if (j !== undefined && end !== undefined) {
      const startAttempt = e.attempt ?? 1;
      const changed = yield {
        kind: 'startAndEnd',
        params: {
          id: e.taskId,
          status: end.status,
          startedAt: eventTime(e.ts, now),
          at: eventTime(end.ts, now),
          attempts: Math.max(startAttempt, end.attempt ?? startAttempt),
          startAttempt,
          code: end.code ?? null,
          now,
          ...carried(end),
        },
      };
      if (changed > 0) {
        results[i] = 'applied';
        results[j] = 'applied';
        continue;
      }
    }
    results[i] = yield* applyOne(e, now);
  }
  return results;
}

/** Runs a plan whose statements run synchronously (SQLite). */
export function runPlanSync(plan: ApplyPlan, run: (s: PlannedStatement) => number): ApplyResult[] {
  let step = plan.next();
  while (!step.done) step = plan.next(run(step.value));
  return step.value;
}

/** Runs a plan whose statements are awaited (PostgreSQL). */
export async function runPlan(
  plan: ApplyPlan,
  run: (s: PlannedStatement) => Promise<number>,
): Promise<ApplyResult[]> {
  let step = plan.next();
  while (!step.done) step = plan.next(await run(step.value));
  return step.value;
}
