// What the ledger is asked to write on the hot path: a submission, and a task's status changes
// from tasks:events. A leaf module, so that the ledger and its per-dialect writes share these
// shapes without importing each other.
import { isTerminal, type TaskEventsEntry } from '@neuroagent/contracts';

export interface SubmittedTask {
  id: string;
  owner: string;
  queue: string;
  task: string;
  /** ISO-8601 string or Date. */
  submittedAt: string | Date;
  /** sha256 hex of the canonical input JSON (see inputDigest()). */
  inputDigest: string;
}

/**
 * One status change, as decoded from `tasks:events` (decodeTaskEventsEntry). The task name, owner
 * and submit time are used only to create the row of a task the gateway never recorded; the
 * record a terminal entry may carry is the completion watch's, not the ledger's.
 */
export type LedgerEvent = Omit<TaskEventsEntry, 'record'>;

/**
 * - `applied`: the row changed;
 * - `created`: the task was unknown (submitted outside the gateway: `npm run replay`, a NATS CLI
 *   publish, or an event that overtook its submit): a row was inserted with the owner, queue, task
 *   and submit time the event carries, so the owner's `GET /tasks` lists it; with owner '' when the
 *   event has none (an older worker, or a poison message without a userId), and then no user sees it;
 * - `ignored`: a duplicate, or a stale event (e.g. `running` after `succeeded`).
 */
export type ApplyResult = 'applied' | 'created' | 'ignored';

/**
 * Index of each `running` event → index of the same task's next event, when that next event is
 * terminal: the two can be applied as one UPDATE (a worker writes them milliseconds apart, so
 * under load they usually arrive in the same batch).
 */
export function pairStartsWithEnds(events: LedgerEvent[]): Map<number, number> {
  const pairs = new Map<number, number>();
  const openStart = new Map<string, number>();
  for (const [i, e] of events.entries()) {
    const start = openStart.get(e.taskId);
    openStart.delete(e.taskId);
    if (e.status === 'running') openStart.set(e.taskId, i);
    else if (start !== undefined && isTerminal(e.status)) pairs.set(start, i);
  }
  return pairs;
}
