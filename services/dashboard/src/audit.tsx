// The audit log: every admin action that changed something (who, what, when, target, outcome),
// newest first, filtered by actor and action.
import { useEffect, useState } from 'preact/hooks';
import { api, query } from './api.ts';
import { ErrorBanner, Time, useAction, usePoll } from './common.tsx';
import type { AuditEntry, Page } from './types.ts';

const POLL_MS = 5000;
const PAGE_SIZE = 50;
const ACTIONS = ['queue.pause', 'queue.resume', 'task.replay', 'task.cancel', 'dlq.redrive', 'dlq.purge'];

export function AuditPage() {
  const [actor, setActor] = useState('');
  const [actionFilter, setActionFilter] = useState('');
  const [applied, setApplied] = useState({ actor: '', action: '' });
  const [extra, setExtra] = useState<AuditEntry[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const more = useAction();
  const key = JSON.stringify(applied);

  useEffect(() => {
    setExtra([]);
    setCursor(undefined);
  }, [key]);
  const first = usePoll(
    () => api<Page<AuditEntry>>(`/admin/audit${query({ ...applied, limit: PAGE_SIZE })}`),
    POLL_MS,
    [key],
  );
  const firstItems = first.data?.items ?? [];
  const seen = new Set(firstItems.map((a) => a.id));
  const rows = [...firstItems, ...extra.filter((a) => !seen.has(a.id))];
  const next = cursor === undefined ? (first.data?.next_cursor ?? null) : cursor;

  const loadMore = async () => {
    if (!next) return;
    const page = await more.run(() =>
      api<Page<AuditEntry>>(`/admin/audit${query({ ...applied, limit: PAGE_SIZE, cursor: next })}`),
    );
    if (!page) return;
    setExtra((list) => [...list, ...page.items]);
    setCursor(page.next_cursor);
  };

  return (
    <section data-testid="audit-page">
      <div class="toolbar">
        <h2>Audit log</h2>
      </div>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ actor: actor.trim(), action: actionFilter });
        }}
      >
        <label>
          Actor
          <input
            data-testid="audit-actor"
            value={actor}
            onInput={(e) => setActor((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Action
          <select
            data-testid="audit-action"
            value={actionFilter}
            onChange={(e) => setActionFilter((e.target as HTMLSelectElement).value)}
          >
            <option value="">any</option>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" data-testid="audit-apply">
          Search
        </button>
      </form>
      <ErrorBanner error={more.error ?? first.error} />
      <table data-testid="audit-table">
        <thead>
          <tr>
            <th>When</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Target</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.id} data-testid="audit-row" data-action={a.action} data-target={a.target ?? ''}>
              <td>
                <Time value={a.at} />
              </td>
              <td data-testid="audit-row-actor">{a.actor}</td>
              <td>
                <code>{a.action}</code>
              </td>
              <td>
                <code>{a.target ?? '—'}</code>
              </td>
              <td class="small">
                <code>{a.detail === null || a.detail === undefined ? '' : JSON.stringify(a.detail)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {first.data && rows.length === 0 ? <p class="muted">Nothing recorded.</p> : null}
      {next ? (
        <button type="button" data-testid="audit-more" disabled={more.busy} onClick={loadMore}>
          More
        </button>
      ) : null}
    </section>
  );
}
