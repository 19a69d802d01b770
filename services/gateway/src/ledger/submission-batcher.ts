// Records submissions in the ledger in batches: every submission that arrives while a write is
// being prepared goes into the same INSERT, and each caller still waits for its own row (the task
// is only published once its row exists). Alone, a submission costs what it did; under load, one
// statement serves many. Why: the ORM and SQLite cost per statement was the largest share of the
// gateway's CPU per task. With tracing on, each submission has a `ledger record_submitted` span and
// each INSERT a `ledger insert_submitted` span, child of the batch's first submission and linked
// to the others.
import {
  ATTR,
  contextWithSpan,
  markError,
  type Span,
  SpanKind,
  startSpan,
  withSpan,
} from '@neuroagent/platform';
import type { Ledger, SubmittedTask } from './ledger.ts';

export interface SubmissionBatcherOptions {
  /** Most rows per INSERT (SQLite caps bound parameters at 32,766; 14 columns a row). */
  maxBatch?: number;
}

interface Waiting {
  task: SubmittedTask;
  resolve(): void;
  reject(err: unknown): void;
  /** The submission's span; undefined with tracing off. */
  span: Span | undefined;
}

const RECORD_SPAN = { kind: SpanKind.INTERNAL };

export function createSubmissionBatcher(
  ledger: Pick<Ledger, 'recordSubmittedMany'> & Partial<Pick<Ledger, 'dialect'>>,
  opts: SubmissionBatcherOptions = {},
): Pick<Ledger, 'recordSubmitted'> {
  const maxBatch = opts.maxBatch ?? 500;
  let queue: Waiting[] = [];
  let scheduled = false;
  const insertSpan = {
    kind: SpanKind.CLIENT,
    attributes: {
      ...(ledger.dialect === undefined ? {} : { [ATTR.dbSystem]: ledger.dialect }),
      [ATTR.dbOperation]: 'INSERT',
      [ATTR.dbCollection]: 'tasks',
    },
  };

  function insert(batch: Waiting[]): Promise<void> {
    const first = batch[0]?.span;
    if (first === undefined) return ledger.recordSubmittedMany(batch.map((w) => w.task));
    const links = [];
    for (const w of batch.slice(1)) if (w.span) links.push({ context: w.span.spanContext() });
    return withSpan(
      'ledger insert_submitted',
      { ...insertSpan, parent: contextWithSpan(first), links },
      (span) => {
        span?.setAttribute(ATTR.dbBatchSize, batch.length);
        return ledger.recordSubmittedMany(batch.map((w) => w.task));
      },
    );
  }

  async function flush(): Promise<void> {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        await insert(batch);
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
  }

  function enqueue(task: SubmittedTask, span: Span | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      queue.push({ task, resolve, reject, span });
      if (!scheduled) {
        scheduled = true;
        // setImmediate: after the I/O callbacks of this turn, so requests read together share it.
        setImmediate(() => void flush());
      }
    });
  }

  return {
    recordSubmitted(task) {
      const span = startSpan('ledger record_submitted', RECORD_SPAN);
      if (span === undefined) return enqueue(task, undefined);
      span.setAttribute(ATTR.taskId, task.id);
      return enqueue(task, span).then(
        () => span.end(),
        (err: unknown) => {
          markError(span, err);
          span.end();
          throw err;
        },
      );
    },
  };
}
