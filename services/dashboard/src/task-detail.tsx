// One task: its record (status, error code and message, result; for admins also the owner, the
// input from the JetStream log and the ledger row) and a live timeline of its events over SSE.
// Admins read GET /admin/tasks/{id} and its /events; a normal user GET /tasks/{id} and its /events.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { ErrorBanner, Field, Json, StatusBadge, Time, useAction, usePoll } from './common.tsx';
import { taskHref } from './route.ts';
import { followEvents } from './sse.ts';
import type { AdminTaskDetail, LedgerTask, TaskError, TaskEventItem, TaskRecord } from './types.ts';

const TERMINAL_STATUSES = new Set(['succeeded', 'failed', 'cancelled']);
const RECORD_POLL_MS = 3000;

interface View {
  status: string;
  task: string;
  queue: string;
  error: TaskError | null;
  result: unknown;
  record: TaskRecord | null;
  ledger: LedgerTask | null;
  input: unknown;
  subject: string | null;
}

function viewOf(admin: boolean, body: AdminTaskDetail | TaskRecord): View {
  if (!admin) {
    const r = body as TaskRecord;
    return {
      status: r.status,
      task: r.task,
      queue: r.queue,
      error: r.error ?? null,
      result: r.result,
      record: r,
      ledger: null,
      input: undefined,
      subject: null,
    };
  }
  const d = body as AdminTaskDetail;
  const r = d.record;
  const l = d.task;
  return {
    status: r?.status ?? l?.status ?? 'unknown',
    task: r?.task ?? l?.task ?? '—',
    queue: r?.queue ?? l?.queue ?? '—',
    error: r?.error ?? (l?.error_code ? { code: l.error_code } : null),
    result: r?.result,
    record: r,
    ledger: l,
    input: d.input,
    subject: d.subject,
  };
}

/** The status the events imply when they are ahead of the last record read. */
function liveStatus(recordStatus: string, events: TaskEventItem[]): string {
  if (TERMINAL_STATUSES.has(recordStatus)) return recordStatus;
  const last = events.at(-1);
  if (!last) return recordStatus;
  if (last.type === 'done') return 'succeeded';
  if (last.type === 'error') return String((last.data as { status?: string } | null)?.status ?? 'failed');
  return 'running';
}

export function TaskDetailPage({ id, admin }: { id: string; admin: boolean }) {
  const base = `${admin ? '/admin/tasks' : '/tasks'}/${encodeURIComponent(id)}`;
  // The stream drives the page; reading the record again until it is final also covers a task
  // the gateway did not know yet when the page opened (a re-drive, a replay).
  const detail = usePoll(
    () => api<AdminTaskDetail | TaskRecord>(base),
    (last) => (last && TERMINAL_STATUSES.has(viewOf(admin, last).status) ? 0 : RECORD_POLL_MS),
    [base],
  );
  const [events, setEvents] = useState<TaskEventItem[]>([]);
  const [stream, setStream] = useState('connecting');
  const [streamError, setStreamError] = useState<ApiError | null>(null);
  const action = useAction();
  const [replayed, setReplayed] = useState<string | null>(null);
  const refresh = detail.refresh;

  useEffect(() => {
    setEvents([]);
    return followEvents(`${base}/events`, {
      onEvent(event) {
        setEvents((list) => (event.id && list.some((e) => e.id === event.id) ? list : [...list, event]));
        // The record (times, result, error message) changes with every event: read it again.
        refresh();
      },
      onState: setStream,
      onError(code, message) {
        setStreamError(new ApiError(0, code, message));
      },
    });
  }, [base, refresh]);

  const view = detail.data ? viewOf(admin, detail.data) : null;
  const status = view ? liveStatus(view.status, events) : null;

  const cancel = async () => {
    await action.run(() =>
      admin ? api(`${base}/cancel`, { method: 'POST' }) : api(base, { method: 'DELETE' }),
    );
    refresh();
  };
  const replay = async () => {
    const res = await action.run(() => api<{ task_id: string }>(`${base}/replay`, { method: 'POST' }));
    if (res) setReplayed(res.task_id);
  };

  return (
    <section data-testid="task-detail" data-task-id={id}>
      <div class="toolbar">
        <h2>
          Task <code data-testid="detail-id">{id}</code>
        </h2>
        <a href="#/tasks" class="small">
          back to the list
        </a>
      </div>
      <ErrorBanner error={action.error ?? detail.error} />
      {view && status ? (
        <>
          <dl class="fields">
            <Field label="Status">
              <StatusBadge status={status} testid="detail-status" />
            </Field>
            <Field label="Task">{view.task}</Field>
            <Field label="Queue">{view.queue}</Field>
            {admin ? <Field label="Owner">{view.ledger?.owner ?? '—'}</Field> : null}
            <Field label="Attempts">{view.record?.attempts ?? view.ledger?.attempts ?? '—'}</Field>
            <Field label="Submitted">
              <Time value={view.record?.submitted_at ?? view.ledger?.submitted_at} />
            </Field>
            <Field label="Started">
              <Time value={view.record?.started_at ?? view.ledger?.started_at} />
            </Field>
            <Field label="Finished">
              <Time value={view.record?.finished_at ?? view.ledger?.finished_at} />
            </Field>
            {admin && view.subject ? (
              <Field label="Subject">
                <code>{view.subject}</code>
              </Field>
            ) : null}
          </dl>
          {view.error ? (
            <div class="task-error" data-testid="detail-error">
              <code data-testid="detail-error-code">{view.error.code}</code>
              <span data-testid="detail-error-message">{view.error.message ?? ''}</span>
            </div>
          ) : null}
          <div class="actions">
            {!TERMINAL_STATUSES.has(status) ? (
              <button
                type="button"
                class="warn"
                data-testid="detail-cancel"
                disabled={action.busy}
                onClick={cancel}
              >
                Cancel
              </button>
            ) : null}
            {admin ? (
              <button type="button" data-testid="detail-replay" disabled={action.busy} onClick={replay}>
                Replay as a new task
              </button>
            ) : null}
            {replayed ? (
              <a href={taskHref(replayed)} data-testid="detail-replayed-link" data-task-id={replayed}>
                replayed as {replayed}
              </a>
            ) : null}
          </div>
          <h3>Result</h3>
          <Json value={view.result} testid="detail-result" />
          {admin ? (
            <>
              <h3>Input</h3>
              <Json value={view.input} testid="detail-input" />
            </>
          ) : null}
        </>
      ) : null}
      <h3>
        Events{' '}
        <span class="muted small" data-testid="stream-state">
          {stream}
        </span>
      </h3>
      <ErrorBanner error={streamError} />
      <ol class="timeline" data-testid="timeline">
        {events.map((e) => (
          <li
            key={e.id || `${e.type}-${e.ts}`}
            data-testid="timeline-event"
            data-event-type={e.type}
            data-event-id={e.id}
          >
            <span class={`badge event-${e.type}`}>{e.type}</span> <Time value={e.ts} />{' '}
            {e.data !== null && e.data !== undefined ? (
              <code class="small">{JSON.stringify(e.data)}</code>
            ) : null}
          </li>
        ))}
      </ol>
    </section>
  );
}
