// Pieces every page uses: the API error banner, status badges, times, JSON blocks, and a polling
// hook that never runs two requests of one page at once.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { type ApiError, asApiError } from './api.ts';

export function ErrorBanner({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" data-testid="api-error" data-code={error.code}>
      <strong data-testid="api-error-code">{error.code}</strong>
      <span data-testid="api-error-message">{error.message}</span>
    </div>
  );
}

export function StatusBadge({ status, testid }: { status: string; testid?: string }) {
  return (
    <span class={`badge status-${status}`} data-testid={testid}>
      {status}
    </span>
  );
}

export function Time({ value }: { value: string | null | undefined }) {
  if (!value) return <span class="muted">—</span>;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return <span>{value}</span>;
  return <time dateTime={value}>{d.toLocaleString()}</time>;
}

export function Json({ value, testid }: { value: unknown; testid?: string }) {
  return (
    <pre class="json" data-testid={testid}>
      {value === undefined ? '—' : JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="field">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export interface Poll<T> {
  data: T | null;
  error: ApiError | null;
  refresh(): void;
}

/**
 * Calls load now and every intervalMs while the component is mounted, and again when a value in
 * deps changes. intervalMs may depend on the last answer (0: stop polling until a refresh). A slow
 * answer delays the next call rather than piling up requests.
 */
export function usePoll<T>(
  load: () => Promise<T>,
  intervalMs: number | ((last: T | null) => number),
  deps: unknown[],
): Poll<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const loadRef = useRef(load);
  loadRef.current = load;
  const intervalRef = useRef(intervalMs);
  intervalRef.current = intervalMs;
  const kick = useRef<() => void>(() => {});

  useEffect(() => {
    // New deps (other filters, another task): what was read for the old ones is not shown.
    setData(null);
    setError(null);
    let stopped = false;
    let timer = 0;
    let running = false;
    let again = false;
    let last: T | null = null;
    const run = async () => {
      window.clearTimeout(timer);
      if (running) {
        again = true; // a refresh during a call: call once more right after it
        return;
      }
      running = true;
      try {
        const value = await loadRef.current();
        last = value;
        if (!stopped) {
          setData(value);
          setError(null);
        }
      } catch (err) {
        if (!stopped) setError(asApiError(err));
      } finally {
        running = false;
        if (!stopped && again) {
          again = false;
          void run();
        } else if (!stopped) {
          const every = intervalRef.current;
          const ms = typeof every === 'function' ? every(last) : every;
          if (ms > 0) timer = window.setTimeout(run, ms);
        }
      }
    };
    kick.current = () => void run();
    void run();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, deps);

  const refresh = useCallback(() => kick.current(), []);
  return { data, error, refresh };
}

/** Runs an action (a button), keeping its error for the banner and a busy flag for the button. */
export function useAction(): {
  busy: boolean;
  error: ApiError | null;
  run<T>(action: () => Promise<T>): Promise<T | undefined>;
  clear(): void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = useCallback(async <T,>(action: () => Promise<T>) => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (err) {
      setError(asApiError(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(null) };
}
