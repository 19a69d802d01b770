// Dead letters: the messages the workers gave up on (poison, or out of deliveries), with re-drive
// (republish under a new task id, then delete the dead letter) and purge. Destructive buttons ask
// for a second click instead of a confirm() dialog.
import { useState } from 'preact/hooks';
import { api, query } from './api.ts';
import { ErrorBanner, Time, useAction, usePoll } from './common.tsx';
import { taskHref } from './route.ts';
import type { DeadLetter, Page, RedriveResult } from './types.ts';

const POLL_MS = 3000;
const PAGE_SIZE = 50;

type Target = { seqs: number[] } | { all: true };

function ConfirmButton(props: { testid: string; label: string; disabled: boolean; onConfirm(): void }) {
  const [armed, setArmed] = useState(false);
  return (
    <button
      type="button"
      class={armed ? 'danger' : 'warn'}
      data-testid={props.testid}
      data-armed={String(armed)}
      disabled={props.disabled}
      onBlur={() => setArmed(false)}
      onClick={() => {
        if (!armed) return setArmed(true);
        setArmed(false);
        props.onConfirm();
      }}
    >
      {armed ? `${props.label}: click again` : props.label}
    </button>
  );
}

export function DeadLettersPage() {
  const [extra, setExtra] = useState<DeadLetter[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [redriven, setRedriven] = useState<RedriveResult | null>(null);
  const [purged, setPurged] = useState<number | null>(null);
  const action = useAction();
  const first = usePoll(
    () => api<Page<DeadLetter>>(`/admin/dead-letters${query({ limit: PAGE_SIZE })}`),
    POLL_MS,
    [],
  );
  const firstItems = first.data?.items ?? [];
  const seen = new Set(firstItems.map((d) => d.seq));
  const rows = [...firstItems, ...extra.filter((d) => !seen.has(d.seq))];
  const next = cursor === undefined ? (first.data?.next_cursor ?? null) : cursor;

  const forget = (target: Target) => {
    if ('all' in target) {
      setExtra([]);
      setSelected(new Set());
      return;
    }
    const gone = new Set(target.seqs);
    setExtra((list) => list.filter((d) => !gone.has(d.seq)));
    setSelected((s) => new Set([...s].filter((seq) => !gone.has(seq))));
  };
  const redrive = async (target: Target) => {
    const res = await action.run(() =>
      api<RedriveResult>('/admin/dead-letters/redrive', { method: 'POST', body: target }),
    );
    if (res) {
      setRedriven(res);
      setPurged(null);
      forget(target);
    }
    first.refresh();
  };
  const purge = async (target: Target) => {
    const res = await action.run(() =>
      api<{ purged: number }>('/admin/dead-letters/purge', { method: 'POST', body: target }),
    );
    if (res) {
      setPurged(res.purged);
      setRedriven(null);
      forget(target);
    }
    first.refresh();
  };
  const loadMore = async () => {
    if (!next) return;
    const page = await action.run(() =>
      api<Page<DeadLetter>>(`/admin/dead-letters${query({ limit: PAGE_SIZE, cursor: next })}`),
    );
    if (!page) return;
    setExtra((list) => [...list, ...page.items]);
    setCursor(page.next_cursor);
  };
  const toggle = (seq: number) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(seq)) n.delete(seq);
      else n.add(seq);
      return n;
    });
  const chosen = [...selected];

  return (
    <section data-testid="dead-letters-page">
      <div class="toolbar">
        <h2>Dead letters</h2>
        <span class="muted small">live, every {POLL_MS / 1000} s</span>
        <button
          type="button"
          data-testid="dlq-redrive-selected"
          disabled={action.busy || chosen.length === 0}
          onClick={() => redrive({ seqs: chosen })}
        >
          Re-drive selected ({chosen.length})
        </button>
        <ConfirmButton
          testid="dlq-purge-selected"
          label={`Purge selected (${chosen.length})`}
          disabled={action.busy || chosen.length === 0}
          onConfirm={() => purge({ seqs: chosen })}
        />
        <ConfirmButton
          testid="dlq-redrive-all"
          label="Re-drive all"
          disabled={action.busy || rows.length === 0}
          onConfirm={() => redrive({ all: true })}
        />
        <ConfirmButton
          testid="dlq-purge-all"
          label="Purge all"
          disabled={action.busy || rows.length === 0}
          onConfirm={() => purge({ all: true })}
        />
      </div>
      <ErrorBanner error={action.error ?? first.error} />
      {redriven ? (
        <div class="notice" data-testid="dlq-result">
          Re-driven: {redriven.redriven.length}, skipped: {redriven.skipped.length}.
          <ul>
            {redriven.redriven.map((r) => (
              <li key={r.seq}>
                #{r.seq} →{' '}
                <a
                  href={taskHref(r.task_id)}
                  data-testid="dlq-redriven-link"
                  data-seq={r.seq}
                  data-task-id={r.task_id}
                >
                  <code>{r.task_id}</code>
                </a>
              </li>
            ))}
            {redriven.skipped.map((s) => (
              <li key={s.seq} data-testid="dlq-skipped" data-seq={s.seq}>
                #{s.seq} skipped: {s.reason}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {purged !== null ? (
        <div class="notice" data-testid="dlq-purged">
          Purged {purged}.
        </div>
      ) : null}
      <table data-testid="dlq-table">
        <thead>
          <tr>
            <th />
            <th>Seq</th>
            <th>Task id</th>
            <th>Queue</th>
            <th>Reason</th>
            <th>Detail</th>
            <th>Deliveries</th>
            <th>Dead since</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.seq} data-testid="dlq-row" data-seq={d.seq} data-task-id={d.task_id ?? ''}>
              <td>
                <input
                  type="checkbox"
                  data-testid="dlq-select"
                  checked={selected.has(d.seq)}
                  onChange={() => toggle(d.seq)}
                />
              </td>
              <td>{d.seq}</td>
              <td>
                {d.task_id ? (
                  <a href={taskHref(d.task_id)}>
                    <code>{d.task_id}</code>
                  </a>
                ) : (
                  <span class="muted">—</span>
                )}
              </td>
              <td>{d.queue ?? '—'}</td>
              <td data-testid="dlq-reason">
                <code>{d.reason ?? '—'}</code>
              </td>
              <td class="small detail">{d.detail ?? ''}</td>
              <td>{d.deliveries ?? '—'}</td>
              <td>
                <Time value={d.dead_at} />
              </td>
              <td class="nowrap">
                <button
                  type="button"
                  data-testid="dlq-redrive"
                  disabled={action.busy || !d.replayable}
                  title={d.replayable ? '' : 'not a valid task message: it cannot be replayed as it is'}
                  onClick={() => redrive({ seqs: [d.seq] })}
                >
                  Re-drive
                </button>{' '}
                <ConfirmButton
                  testid="dlq-purge"
                  label="Purge"
                  disabled={action.busy}
                  onConfirm={() => purge({ seqs: [d.seq] })}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {first.data && rows.length === 0 ? (
        <p class="muted" data-testid="dlq-empty">
          No dead letters.
        </p>
      ) : null}
      {next ? (
        <button type="button" data-testid="dlq-more" disabled={action.busy} onClick={loadMore}>
          More
        </button>
      ) : null}
    </section>
  );
}
