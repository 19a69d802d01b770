// Queues: GET /admin/queues every POLL_MS (consumer backlog, workers, finish rates) with pause and
// resume buttons. A pause stops the workers pulling; submissions still wait in the stream.
import { useState } from 'preact/hooks';
import { api } from './api.ts';
import { ErrorBanner, Time, useAction, usePoll } from './common.tsx';
import type { QueueInfo, QueueRates } from './types.ts';

const POLL_MS = 1500;

function percent(rate: number): string {
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0)} %`;
}

function Rates({ rates }: { rates: QueueRates | undefined }) {
  if (!rates) return <span class="muted">—</span>;
  return (
    <span title={`${rates.succeeded} succeeded, ${rates.cancelled} cancelled`}>
      {rates.finished} done · {rates.failed} failed ({percent(rates.failure_rate)}) · {rates.per_s.toFixed(2)}
      /s
    </span>
  );
}

export function QueuesPage() {
  const [reason, setReason] = useState('');
  const poll = usePoll(() => api<{ queues: QueueInfo[] }>('/admin/queues'), POLL_MS, []);
  const action = useAction();
  const queues = poll.data?.queues ?? [];

  const toggle = async (q: QueueInfo) => {
    const verb = q.paused ? 'resume' : 'pause';
    await action.run(() =>
      api<QueueInfo>(`/admin/queues/${encodeURIComponent(q.queue)}/${verb}`, {
        method: 'POST',
        body: verb === 'pause' && reason.trim() ? { reason: reason.trim() } : {},
      }),
    );
    poll.refresh();
  };

  return (
    <section data-testid="queues-page">
      <div class="toolbar">
        <h2>Queues</h2>
        <span class="muted small" data-testid="queues-live">
          live, every {POLL_MS / 1000} s
        </span>
        <label class="inline">
          Pause reason
          <input
            data-testid="pause-reason"
            value={reason}
            placeholder="optional, kept in the audit log"
            onInput={(e) => setReason((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>
      <ErrorBanner error={action.error ?? poll.error} />
      <table data-testid="queues-table">
        <thead>
          <tr>
            <th>Queue</th>
            <th>State</th>
            <th title="Not yet delivered to a worker">Pending</th>
            <th title="Delivered, not yet acknowledged">Running</th>
            <th>Redelivered</th>
            <th title="Pull requests waiting">Pulls</th>
            <th>Workers (busy / slots)</th>
            <th>Last minute</th>
            <th>Last hour</th>
            <th>Stream</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {queues.map((q) => {
            const slots = q.workers.reduce((n, w) => n + w.slots, 0);
            const busy = q.workers.reduce((n, w) => n + w.busy, 0);
            return (
              <tr key={q.queue} data-testid="queue-row" data-queue={q.queue} data-paused={String(q.paused)}>
                <td>
                  <a href={`#/tasks?queue=${encodeURIComponent(q.queue)}`}>
                    <code>{q.queue}</code>
                  </a>
                </td>
                <td>
                  <span
                    class={`badge ${q.paused ? 'status-paused' : 'status-running'}`}
                    data-testid="queue-state"
                    title={q.paused ? `paused by ${q.paused_by ?? '?'}` : ''}
                  >
                    {q.paused ? 'paused' : 'active'}
                  </span>
                  {q.paused ? (
                    <div class="muted small">
                      by {q.paused_by ?? '?'} <Time value={q.paused_at} />
                    </div>
                  ) : null}
                </td>
                <td data-testid="queue-pending">{q.consumer?.pending ?? '—'}</td>
                <td data-testid="queue-ack-pending">{q.consumer?.ack_pending ?? '—'}</td>
                <td>{q.consumer?.redelivered ?? '—'}</td>
                <td>{q.consumer?.waiting_pulls ?? '—'}</td>
                <td data-testid="queue-workers" title={q.workers.map((w) => w.id).join('\n')}>
                  {q.replicas} · {busy} / {slots}
                </td>
                <td>
                  <Rates rates={q.rates?.minute} />
                </td>
                <td>
                  <Rates rates={q.rates?.hour} />
                </td>
                <td class="small">
                  {q.stream ? `${q.stream.messages} msgs, ${(q.stream.bytes / 1024).toFixed(0)} KiB` : '—'}
                </td>
                <td>
                  <button
                    type="button"
                    data-testid={q.paused ? 'queue-resume' : 'queue-pause'}
                    class={q.paused ? '' : 'warn'}
                    disabled={action.busy}
                    onClick={() => toggle(q)}
                  >
                    {q.paused ? 'Resume' : 'Pause'}
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {poll.data && queues.length === 0 ? <p class="muted">No queues.</p> : null}
    </section>
  );
}
