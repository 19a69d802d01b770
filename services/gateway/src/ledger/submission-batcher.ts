// Records submissions in the ledger in batches: every submission that arrives while a write is
// being prepared goes into the same INSERT, and each caller still waits for its own row (the task
// is only published once its row exists). Alone, a submission costs what it did; under load, one
// statement serves many. Why: the ORM and SQLite cost per statement was the largest share of the
// gateway's CPU per task.
import type { Ledger, SubmittedTask } from './ledger.ts';

export interface SubmissionBatcherOptions {
  /** Most rows per INSERT (SQLite caps bound parameters at 32,766; 14 columns a row). */
  maxBatch?: number;
}

interface Waiting {
  task: SubmittedTask;
  resolve(): void;
  reject(err: unknown): void;
}

export function createSubmissionBatcher(
  ledger: Pick<Ledger, 'recordSubmittedMany'>,
  opts: SubmissionBatcherOptions = {},
): Pick<Ledger, 'recordSubmitted'> {
  const maxBatch = opts.maxBatch ?? 500;
  let queue: Waiting[] = [];
  let scheduled = false;

  async function flush(): Promise<void> {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        await ledger.recordSubmittedMany(batch.map((w) => w.task));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
  }

  return {
    recordSubmitted(task) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ task, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          // setImmediate: after the I/O callbacks of this turn, so requests read together share it.
          setImmediate(() => void flush());
        }
      });
    },
  };
}
