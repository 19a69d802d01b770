// What the admin API does (docs/admin-api.md), over JetStream, the queue-control bucket, Redis and
// the ledger: no Koa here, so routes/admin.ts only parses, authorises, audits and answers.
// Everything read back from NATS or Redis was written by other processes (or by someone with the
// NATS CLI), so it is validated before it is served.
import type { JetStreamManager, MsgRequest } from '@nats-io/jetstream';
import {
  HEADERS,
  type Names,
  QUEUES,
  type QueueName,
  type QueuePause,
  type TaskEvent,
  type TaskRecord,
  WorkerHeartbeat,
} from '@neuroagent/contracts';
import {
  createValidator,
  findTask,
  headerValue,
  parseStreamEntry,
  type QueueControl,
  type Redis,
  type ReplayContext,
  ReplayError,
  republish,
  type StoredJob,
  summarize,
} from '@neuroagent/platform';
import type { Static } from '@sinclair/typebox';
import type { Ledger, LedgerTask } from '../ledger/ledger.ts';
import type { DeadLetterSchema, QueueViewSchema, RatesSchema } from './admin-schemas.ts';

const validHeartbeat = createValidator(WorkerHeartbeat);

export interface AdminSettings {
  /** A worker whose last heartbeat is older than this is not listed. */
  workerStaleMs: number;
  /** Most events a task's detail shows (the oldest first). */
  maxTimelineEvents: number;
}

// The shapes the admin API answers with are its schemas' (admin-schemas.ts): one definition, which
// the routes validate against and the OpenAPI document shows.
export type QueueRates = Static<typeof RatesSchema>;
export type QueueView = Static<typeof QueueViewSchema>;

export interface TaskDetail {
  task: LedgerTask | null;
  record: (TaskRecord & { owner: string }) | null;
  input: unknown;
  subject: string | null;
  events: TaskEvent[];
}

export type DeadLetter = Static<typeof DeadLetterSchema>;

export interface AdminOpsDeps {
  jsm: JetStreamManager;
  replay: ReplayContext;
  control: QueueControl;
  redis: Redis;
  names: Names;
  ledger: Pick<Ledger, 'get' | 'finishedCounts'>;
  store: { readRecord(id: string): Promise<(TaskRecord & { owner: string }) | null> };
  settings: AdminSettings;
  now?: () => number;
}

export type SeqSelection = { seqs: number[] } | { all: true };

export function createAdminOps(deps: AdminOpsDeps) {
  const { jsm, names } = deps;
  // STREAM.MSG.GET takes `next_by_subj` (the first message at or after `seq` on a subject) since
  // NATS 2.9; the client's type for the stream API only lists seq and last_by_subj.
  const nextFrom = (seq: number) => ({ seq, next_by_subj: names.dlqSubjects }) as unknown as MsgRequest;
  const now = deps.now ?? Date.now;

  async function rates(queue: string, windowMs: number): Promise<QueueRates> {
    const counts = await deps.ledger.finishedCounts(queue, new Date(now() - windowMs));
    const finished = counts.succeeded + counts.failed + counts.cancelled;
    return {
      ...counts,
      finished,
      per_s: Math.round((finished / (windowMs / 1000)) * 1000) / 1000,
      failure_rate: finished === 0 ? 0 : Math.round((counts.failed / finished) * 1000) / 1000,
    };
  }

  async function workers(queue: QueueName): Promise<QueueView['workers']> {
    const key = names.workersKey(queue);
    const raw = await deps.redis.hgetall(key);
    const out: QueueView['workers'] = [];
    const forget: string[] = [];
    for (const [field, value] of Object.entries(raw)) {
      let hb: WorkerHeartbeat | null = null;
      try {
        const parsed: unknown = JSON.parse(value);
        hb = validHeartbeat.check(parsed) && parsed.id === field ? parsed : null;
      } catch {
        hb = null;
      }
      const age = hb ? now() - hb.at : Number.POSITIVE_INFINITY;
      // Long gone (or garbage): dropped, so the hash of a queue whose workers come and go stays small.
      if (age > deps.settings.workerStaleMs * 10) forget.push(field);
      if (!hb || age > deps.settings.workerStaleMs) continue;
      out.push({
        id: hb.id,
        slots: hb.slots,
        busy: hb.busy,
        paused: hb.paused,
        last_seen: new Date(hb.at).toISOString(),
      });
    }
    if (forget.length > 0) await deps.redis.hdel(key, ...forget).catch(() => 0);
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  async function consumerOf(queue: QueueName): Promise<QueueView['consumer']> {
    try {
      const info = await jsm.consumers.info(names.stream, names.consumerName(queue));
      const last = info.delivered.last_active;
      return {
        name: info.name,
        pending: info.num_pending,
        ack_pending: info.num_ack_pending,
        redelivered: info.num_redelivered,
        waiting_pulls: info.num_waiting,
        last_active: last ? new Date(last).toISOString() : null,
      };
    } catch {
      return null; // not provisioned yet: no worker of this queue has started
    }
  }

  async function queueView(queue: QueueName, pause?: QueuePause | null): Promise<QueueView> {
    const [state, consumer, ws, minute, hour, stream] = await Promise.all([
      pause === undefined ? deps.control.get(queue) : Promise.resolve(pause),
      consumerOf(queue),
      workers(queue),
      rates(queue, 60_000),
      rates(queue, 3_600_000),
      jsm.streams.info(names.stream, { subjects_filter: names.queueFilter(queue) }),
    ]);
    const perQueue = Object.values(stream.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    return {
      queue,
      paused: state?.paused === true,
      paused_by: state?.paused ? state.by : null,
      paused_at: state?.paused ? state.at : null,
      pause_reason: state?.paused ? state.reason : null,
      stream: {
        name: names.stream,
        messages: perQueue,
        bytes: stream.state.bytes,
        last_ts: stream.state.last_ts ? new Date(stream.state.last_ts).toISOString() : null,
      },
      consumer,
      workers: ws,
      replicas: ws.length,
      rates: { minute, hour },
    };
  }

  function deadLetterOf(job: StoredJob): DeadLetter {
    const dlqPrefix = names.dlqSubject('');
    const original =
      headerValue(job, HEADERS.dlqOrigSubject) ??
      (job.subject.startsWith(dlqPrefix) ? job.subject.slice(dlqPrefix.length) : job.subject);
    const summary = summarize(deps.replay, job, original);
    const deliveries = Number(headerValue(job, HEADERS.dlqDeliveries));
    return {
      seq: job.seq,
      task_id: summary.taskId,
      queue: summary.queue,
      task: summary.task,
      owner: summary.owner,
      subject: original,
      reason: headerValue(job, HEADERS.dlqReason) ?? null,
      detail: headerValue(job, HEADERS.dlqDetail) ?? null,
      deliveries: Number.isInteger(deliveries) ? deliveries : null,
      dead_at: job.time,
      replayable: summary.poison === null,
      poison: summary.poison,
    };
  }

  async function deadLetterAt(seq: number): Promise<StoredJob | null> {
    const m = await jsm.streams.getMessage(names.dlqStream, { seq }).catch(() => null);
    if (!m) return null;
    const headers: Record<string, string[]> = {};
    for (const [k, v] of m.header ?? []) headers[k] = [...(headers[k] ?? []), ...v];
    return {
      stream: names.dlqStream,
      seq: m.seq,
      subject: m.subject,
      time: m.time.toISOString(),
      headers,
      data: m.data,
    };
  }

  /** Sequences of every dead letter now in the stream, oldest first. */
  async function allDeadLetterSeqs(): Promise<number[]> {
    const seqs: number[] = [];
    let next = 1;
    for (;;) {
      const m = await jsm.streams.getMessage(names.dlqStream, nextFrom(next)).catch(() => null);
      if (!m) return seqs;
      seqs.push(m.seq);
      next = m.seq + 1;
    }
  }

  return {
    queues(): Promise<QueueView[]> {
      return Promise.all(QUEUES.map((q) => queueView(q)));
    },

    queue(queue: QueueName): Promise<QueueView> {
      return queueView(queue);
    },

    async setPaused(queue: QueueName, state: QueuePause): Promise<QueueView> {
      await deps.control.set(queue, state);
      return queueView(queue, state);
    },

    async taskDetail(id: string): Promise<TaskDetail | null> {
      const [task, record, rawEvents, stored] = await Promise.all([
        deps.ledger.get(id),
        deps.store.readRecord(id),
        deps.redis.xrange(names.progressKey(id), '-', '+', 'COUNT', deps.settings.maxTimelineEvents),
        findTask(deps.replay, id).catch((err: unknown) => {
          if (err instanceof ReplayError && err.code === 'task_not_found') return null;
          throw err;
        }),
      ]);
      let input: unknown = null;
      if (stored) {
        try {
          input =
            (JSON.parse(Buffer.from(stored.data).toString('utf8')) as { input?: unknown }).input ?? null;
        } catch {
          input = null; // not JSON: a poison message, shown by the dead-letter view
        }
      }
      if (!task && !record && !stored) return null;
      const events = rawEvents.flatMap(([eid, fields]) => parseStreamEntry(eid, fields) ?? []);
      return { task, record, input, subject: stored?.subject ?? null, events };
    },

    /** Republishes a task's stored message under a new id (the same as `npm run replay -- task`). */
    async replay(id: string): Promise<{ task_id: string; replay_of: string }> {
      const job = await findTask(deps.replay, id);
      const result = await republish(deps.replay, job, job.subject);
      if (result.status !== 'replayed' || result.newId === null) {
        throw new ReplayError(
          'bad_arguments',
          `task ${id} cannot be replayed: ${result.reason ?? 'not a valid task'}`,
        );
      }
      return { task_id: result.newId, replay_of: id };
    },

    /** Dead letters after `afterSeq`, oldest first. */
    async deadLetters(opts: {
      afterSeq: number;
      limit: number;
    }): Promise<{ items: DeadLetter[]; next_cursor: string | null }> {
      const items: DeadLetter[] = [];
      let next = opts.afterSeq + 1;
      for (;;) {
        const m = await jsm.streams.getMessage(names.dlqStream, nextFrom(next)).catch(() => null);
        if (!m) return { items, next_cursor: null };
        if (items.length === opts.limit)
          return { items, next_cursor: String(items.at(-1)?.seq ?? opts.afterSeq) };
        const job = await deadLetterAt(m.seq);
        if (job) items.push(deadLetterOf(job));
        next = m.seq + 1;
      }
    },

    /**
     * Republishes each selected dead letter to its original queue under a new id, then deletes it
     * from the dead-letter stream; never deletes one whose republish was not acknowledged.
     */
    async redrive(selection: SeqSelection) {
      const seqs = 'all' in selection ? await allDeadLetterSeqs() : selection.seqs;
      const redriven: { seq: number; task_id: string; replay_of: string | null }[] = [];
      const skipped: { seq: number; reason: string }[] = [];
      for (const seq of seqs) {
        const job = await deadLetterAt(seq);
        if (!job) {
          skipped.push({ seq, reason: 'no such dead letter' });
          continue;
        }
        const letter = deadLetterOf(job);
        const result = await republish(deps.replay, job, letter.subject);
        if (result.status !== 'replayed' || result.newId === null) {
          skipped.push({ seq, reason: result.reason ?? 'not a valid task' });
          continue;
        }
        await jsm.streams.deleteMessage(names.dlqStream, seq);
        redriven.push({ seq, task_id: result.newId, replay_of: letter.task_id });
      }
      return { redriven, skipped };
    },

    async purge(selection: SeqSelection): Promise<{ purged: number }> {
      if ('all' in selection) {
        const { purged } = await jsm.streams.purge(names.dlqStream);
        return { purged };
      }
      let purged = 0;
      for (const seq of selection.seqs) {
        if (await jsm.streams.deleteMessage(names.dlqStream, seq).catch(() => false)) purged++;
      }
      return { purged };
    },
  };
}

export type AdminOps = ReturnType<typeof createAdminOps>;
