// Follows a task's event stream (GET /tasks/{id}/events or /admin/tasks/{id}/events) with fetch()
// and a stream reader, since EventSource cannot send the bearer token. When the connection drops
// before the terminal event it reconnects with Last-Event-ID, so no event is lost or shown twice.
import { authHeaders, errorOf } from './api.ts';
import { createSseParser } from './sse-parser.ts';
import type { TaskEventItem } from './types.ts';

const TERMINAL = new Set(['done', 'error']);
const DEFAULT_RETRY_MS = 1000;
const MAX_RETRY_MS = 10_000;
const NOT_FOUND_RETRIES = 5;

export interface FollowHandlers {
  onEvent(event: TaskEventItem): void;
  /** Connection state, for the page to show: 'live', 'reconnecting', 'ended'. */
  onState(state: 'live' | 'reconnecting' | 'ended'): void;
  /** A refusal that retrying will not fix (401, 403, 404): the follow stops. */
  onError(code: string, message: string): void;
}

/** Starts following; the returned function stops it. */
export function followEvents(path: string, handlers: FollowHandlers): () => void {
  const abort = new AbortController();
  let lastId = '';
  let failures = 0;
  let notFound = 0;

  async function connectOnce(): Promise<'terminal' | 'dropped' | 'refused'> {
    const res = await fetch(path, {
      headers: {
        accept: 'text/event-stream',
        ...authHeaders(),
        ...(lastId ? { 'last-event-id': lastId } : {}),
      },
      signal: abort.signal,
      cache: 'no-store',
    });
    if (!res.ok || !res.body) {
      const err = await errorOf(res);
      // A task published a moment ago may be unknown for a moment (a re-drive has no record until
      // a worker starts it): a 404 is retried a few times, any other refusal ends the follow.
      const retryable = res.status >= 500 || (res.status === 404 && notFound++ < NOT_FOUND_RETRIES);
      if (!retryable) {
        handlers.onError(err.code, err.message);
        return 'refused';
      }
      return 'dropped';
    }
    handlers.onState('live');
    failures = 0;
    let terminal = false;
    const parser = createSseParser((frame) => {
      if (frame.id) lastId = frame.id;
      let payload: { ts?: string; data?: unknown } = {};
      try {
        payload = JSON.parse(frame.data) as typeof payload;
      } catch {
        payload = { data: frame.data };
      }
      handlers.onEvent({ id: frame.id, type: frame.event, ts: payload.ts, data: payload.data });
      if (TERMINAL.has(frame.event)) terminal = true;
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          parser.end();
          break;
        }
        parser.push(value);
        if (terminal) break;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    retryMs = parser.retryMs() ?? retryMs;
    return terminal ? 'terminal' : 'dropped';
  }

  let retryMs = DEFAULT_RETRY_MS;
  void (async () => {
    while (!abort.signal.aborted) {
      let outcome: 'terminal' | 'dropped' | 'refused';
      try {
        outcome = await connectOnce();
      } catch {
        if (abort.signal.aborted) return;
        outcome = 'dropped';
      }
      if (outcome !== 'dropped') {
        handlers.onState('ended');
        return;
      }
      handlers.onState('reconnecting');
      failures += 1;
      const wait = Math.min(MAX_RETRY_MS, retryMs * 2 ** Math.min(failures - 1, 4));
      await new Promise((resolve) => window.setTimeout(resolve, wait));
    }
  })();
  return () => abort.abort();
}
