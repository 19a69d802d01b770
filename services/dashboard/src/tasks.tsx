// Tasks: a searchable list, newest first. Admins search every user's tasks (GET /admin/tasks, by
// status, queue, task, owner and error code); a normal user lists their own (GET /tasks, by status
// and queue). The first page is re-read every POLL_MS, so statuses change without a reload; "More"
// follows next_cursor. The filters live in the hash (#/tasks?status=failed), so links can share them.
import { useEffect, useState } from 'preact/hooks';
import { api, query } from './api.ts';
import { ErrorBanner, StatusBadge, Time, useAction, usePoll } from './common.tsx';
import { navigate, taskHref } from './route.ts';
import type { LedgerTask, Page } from './types.ts';

const POLL_MS = 2000;
const PAGE_SIZE = 25;
const MAX_PAGE_SIZE = 100;
export const STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

type Filters = Record<'status' | 'queue' | 'task' | 'owner' | 'error_code', string>;
const EMPTY: Filters = { status: '', queue: '', task: '', owner: '', error_code: '' };
const ADMIN_ONLY: (keyof Filters)[] = ['task', 'owner', 'error_code'];

/** `?limit=` of the hash (1 to 100), else PAGE_SIZE. */
function pageSizeFromHash(): number {
  const n = Number(new URLSearchParams(window.location.hash.split('?')[1] ?? '').get('limit'));
  return Number.isInteger(n) && n >= 1 && n <= MAX_PAGE_SIZE ? n : PAGE_SIZE;
}

function filtersFromHash(admin: boolean): Filters {
  const q = new URLSearchParams(window.location.hash.split('?')[1] ?? '');
  const f = { ...EMPTY };
  for (const key of Object.keys(EMPTY) as (keyof Filters)[]) {
    if (!admin && ADMIN_ONLY.includes(key)) continue;
    f[key] = q.get(key) ?? '';
  }
  return f;
}

export function TasksPage({ admin }: { admin: boolean }) {
  const applied = filtersFromHash(admin);
  const limit = pageSizeFromHash();
  const key = JSON.stringify([applied, limit]);
  const [draft, setDraft] = useState<Filters>(applied);
  const [extra, setExtra] = useState<LedgerTask[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const more = useAction();
  const base = admin ? '/admin/tasks' : '/tasks';

  useEffect(() => {
    setDraft(applied);
    setExtra([]);
    setCursor(undefined);
  }, [key]);

  const first = usePoll(() => api<Page<LedgerTask>>(`${base}${query({ ...applied, limit })}`), POLL_MS, [
    key,
    base,
  ]);
  const firstItems = first.data?.items ?? [];
  const seen = new Set(firstItems.map((t) => t.id));
  const rows = [...firstItems, ...extra.filter((t) => !seen.has(t.id))];
  // The cursor after the last page read: the first page's until "More" has been used.
  const next = cursor === undefined ? (first.data?.next_cursor ?? null) : cursor;

  const apply = (e: Event) => {
    e.preventDefault();
    navigate(`#/tasks${query({ ...draft, limit: limit === PAGE_SIZE ? '' : limit })}`);
  };
  const loadMore = async () => {
    if (!next) return;
    const page = await more.run(() =>
      api<Page<LedgerTask>>(`${base}${query({ ...applied, limit, cursor: next })}`),
    );
    if (!page) return;
    setExtra((rows) => [...rows, ...page.items]);
    setCursor(page.next_cursor);
  };
  const input = (name: keyof Filters, label: string, placeholder = '') => (
    <label>
      {label}
      <input
        data-testid={`filter-${name}`}
        value={draft[name]}
        placeholder={placeholder}
        onInput={(e) => setDraft({ ...draft, [name]: (e.target as HTMLInputElement).value.trim() })}
      />
    </label>
  );

  return (
    <section data-testid="tasks-page">
      <div class="toolbar">
        <h2>{admin ? 'Tasks' : 'My tasks'}</h2>
        <span class="muted small">live, every {POLL_MS / 1000} s</span>
      </div>
      <form class="filters" onSubmit={apply} data-testid="task-filters">
        <label>
          Status
          <select
            data-testid="filter-status"
            value={draft.status}
            onChange={(e) => setDraft({ ...draft, status: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        {input('queue', 'Queue', 'python_q')}
        {admin ? input('task', 'Task', 'run_python') : null}
        {admin ? input('owner', 'Owner', 'user id') : null}
        {admin ? input('error_code', 'Error code', 'max_deliveries') : null}
        <button type="submit" data-testid="filter-apply">
          Search
        </button>
        <button
          type="button"
          class="secondary"
          data-testid="filter-clear"
          onClick={() => navigate('#/tasks')}
        >
          Clear
        </button>
      </form>
      <ErrorBanner error={more.error ?? first.error} />
      <table data-testid="tasks-table">
        <thead>
          <tr>
            <th>Task id</th>
            <th>Task</th>
            <th>Queue</th>
            {admin ? <th>Owner</th> : null}
            <th>Status</th>
            <th>Error code</th>
            <th>Attempts</th>
            <th>Submitted</th>
            <th>Finished</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.id} data-testid="task-row" data-task-id={t.id} data-status={t.status}>
              <td>
                <a href={taskHref(t.id)} data-testid="task-link">
                  <code>{t.id}</code>
                </a>
              </td>
              <td>{t.task}</td>
              <td>{t.queue}</td>
              {admin ? <td data-testid="task-owner">{t.owner ?? '—'}</td> : null}
              <td>
                <StatusBadge status={t.status} testid="task-status" />
              </td>
              <td data-testid="task-error-code">{t.error_code ? <code>{t.error_code}</code> : ''}</td>
              <td>{t.attempts ?? '—'}</td>
              <td>
                <Time value={t.submitted_at} />
              </td>
              <td>
                <Time value={t.finished_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {first.data && rows.length === 0 ? (
        <p class="muted" data-testid="tasks-empty">
          No tasks match.
        </p>
      ) : null}
      {next ? (
        <button type="button" data-testid="tasks-more" disabled={more.busy} onClick={loadMore}>
          More
        </button>
      ) : null}
    </section>
  );
}
