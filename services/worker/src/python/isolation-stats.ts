// Counts how each run's interpreter was made pristine and why the in-place reset fell back, from
// the reports the sandbox's threads attach to their replies. The reports come from the process
// that runs untrusted code, so only known names are counted: they steer logs and figures, never
// a decision.
import { FALLBACK_REASONS, type FallbackReason } from './inplace-reset.ts';
import { type IsolationReport, PREPARATIONS, type Preparation } from './protocol.ts';

export interface IsolationStats {
  runs: number;
  prepared: Record<Preparation, number>;
  fallbacks: Record<FallbackReason, number>;
  /** CPU milliseconds of in-place resets, for percentiles (the most recent 10,000, in no order). */
  resetMs: number[];
}

const MAX_SAMPLES = 10_000;

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

export function createIsolationStats() {
  const stats: IsolationStats = {
    runs: 0,
    prepared: zeros(PREPARATIONS),
    fallbacks: zeros(FALLBACK_REASONS),
    resetMs: [],
  };
  let nextSample = 0;
  return {
    /** Counts one run; returns the fallback it caused, if any, for the caller's log line. */
    record(report: IsolationReport | null, killed: boolean): FallbackReason | null {
      stats.runs++;
      let fallback: FallbackReason | null = killed ? 'timed_out' : null;
      if (report) {
        if (PREPARATIONS.includes(report.prepared)) stats.prepared[report.prepared]++;
        const ms = report.resetMs;
        if (report.prepared === 'reset' && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) {
          // A ring: every run records one sample, so dropping the oldest must not shift 10,000.
          stats.resetMs[nextSample] = ms;
          nextSample = (nextSample + 1) % MAX_SAMPLES;
        }
        if (report.resetFailed === true) stats.fallbacks.reset_failed++;
        if (report.fallback && FALLBACK_REASONS.includes(report.fallback)) fallback ??= report.fallback;
      }
      if (fallback) stats.fallbacks[fallback]++;
      return fallback;
    },
    snapshot(): IsolationStats {
      return {
        runs: stats.runs,
        prepared: { ...stats.prepared },
        fallbacks: { ...stats.fallbacks },
        resetMs: [...stats.resetMs],
      };
    },
  };
}
