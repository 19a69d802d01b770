// Reading a task's record for a request: Redis first (Redis down is a 503, not a 500), then the
// ledger for a task whose Redis keys expired; and a signal that the client went away, so its
// waiter is released at once.
import type { TaskRecord } from '@neuroagent/contracts';
import type { Logger, TaskReader } from '@neuroagent/platform';
import type { Context } from 'koa';
import { HttpError } from './http-error.ts';
import type { Ledger } from './ledger/ledger.ts';

export type OwnedRecord = TaskRecord & { owner: string };

/** Reading a task's record: Redis first, the ledger when Redis no longer has it. */
export interface RecordDeps {
  store: Pick<TaskReader, 'readRecord'>;
  ledger: Pick<Ledger, 'get'>;
  log: Logger;
}

/** An AbortSignal that fires when the client goes away, so its waiter is released at once. */
export function clientGone(ctx: Context): AbortSignal {
  const ac = new AbortController();
  // `close` comes after every response, sent or not; only an unsent one means the client left (and
  // an abort builds an exception object, which every request would otherwise pay for).
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** The task's record from Redis; Redis down is a 503 the client may retry, not a 500. */
export async function readRecord(
  deps: Pick<RecordDeps, 'store'>,
  taskId: string,
): Promise<OwnedRecord | null> {
  try {
    return await deps.store.readRecord(taskId);
  } catch (err) {
    throw new HttpError(503, 'result_backend_unavailable', 'Redis is not reachable; try again', {
      cause: err,
    });
  }
}

/** Redis's record, or the ledger's when Redis no longer has the task. */
export async function readAnyRecord(deps: RecordDeps, taskId: string): Promise<OwnedRecord | null> {
  return (await readRecord(deps, taskId)) ?? (await fromLedger(deps, taskId));
}

/**
 * Redis no longer has the task (its keys expired, or Redis restarted without persistence): the
 * ledger still knows its status, times and error code, though not its result or message.
 */
async function fromLedger(deps: RecordDeps, id: string): Promise<OwnedRecord | null> {
  const row = await deps.ledger.get(id).catch((err: unknown) => {
    deps.log.warn({ err, taskId: id }, 'ledger read failed');
    return null;
  });
  if (!row || row.owner === '') return null;
  const record: OwnedRecord = {
    id: row.id,
    owner: row.owner,
    task: row.task,
    queue: row.queue,
    status: row.status,
    submitted_at: row.submitted_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    attempts: row.attempts,
  };
  if (row.error_code !== null) {
    record.error = {
      code: row.error_code,
      message: 'the result backend no longer holds this task; the ledger keeps its status and error code',
    };
  }
  return record;
}
