// Counts how each run's interpreter was made pristine and why the in-place reset fell back, from
// the reports the sandbox's threads attach to their replies, and tells an observer (the worker's
// metrics) of each count as it is made. The reports come from the process that runs untrusted
// code, so only known names and small counts are taken: they steer logs and figures, never a
// decision.
import { FALLBACK_REASONS, type FallbackReason } from './inplace-reset.ts';
import { type IsolationReport, PREPARATIONS, type Preparation } from './protocol.ts';

/**
 * Every slow path the sandbox takes instead of its fast one: each interpreter fallback, and
 * `redispatched`, a run handed to another thread because its own exited before starting it.
 */
export const SANDBOX_FALLBACKS = [...FALLBACK_REASONS, 'redispatched'] as const;
export type SandboxFallback = (typeof SANDBOX_FALLBACKS)[number];

/** Told of every count as it is made (the worker's Prometheus counters). */
export interface IsolationObserver {
  prepared(kind: Preparation): void;
  fallback(reason: SandboxFallback, times: number): void;
}

export interface IsolationStats {
  runs: number;
  prepared: Record<Preparation, number>;
  fallbacks: Record<FallbackReason, number>;
  /** Runs handed to another thread because theirs exited before starting them (each hand-over). */
  redispatches: number;
  /** CPU milliseconds of in-place resets, for percentiles (the most recent 10,000, in no order). */
  resetMs: number[];
}

const MAX_SAMPLES = 10_000;
// The host hands a run over at most twice (sandbox-host.ts); anything else is not a real report.
const MAX_REDISPATCHES = 10;

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

export function createIsolationStats(observer?: IsolationObserver) {
  const stats: IsolationStats = {
    runs: 0,
    prepared: zeros(PREPARATIONS),
    fallbacks: zeros(FALLBACK_REASONS),
    redispatches: 0,
    resetMs: [],
  };
  const fellBack = (reason: FallbackReason) => {
    stats.fallbacks[reason]++;
    observer?.fallback(reason, 1);
  };
  let nextSample = 0;
  return {
    /** Counts one run; returns the fallback it caused, if any, for the caller's log line. */
    record(report: IsolationReport | null, killed: boolean, redispatches = 0): FallbackReason | null {
      stats.runs++;
      if (Number.isSafeInteger(redispatches) && redispatches > 0 && redispatches <= MAX_REDISPATCHES) {
        stats.redispatches += redispatches;
        observer?.fallback('redispatched', redispatches);
      }
      let fallback: FallbackReason | null = killed ? 'timed_out' : null;
      if (report) {
        if (PREPARATIONS.includes(report.prepared)) {
          stats.prepared[report.prepared]++;
          observer?.prepared(report.prepared);
        }
        const ms = report.resetMs;
        if (report.prepared === 'reset' && typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) {
          // A ring: every run records one sample, so dropping the oldest must not shift 10,000.
          stats.resetMs[nextSample] = ms;
          nextSample = (nextSample + 1) % MAX_SAMPLES;
        }
        if (report.resetFailed === true) fellBack('reset_failed');
        if (report.fallback && FALLBACK_REASONS.includes(report.fallback)) fallback ??= report.fallback;
      }
      if (fallback) fellBack(fallback);
      return fallback;
    },
    snapshot(): IsolationStats {
      return {
        runs: stats.runs,
        prepared: { ...stats.prepared },
        fallbacks: { ...stats.fallbacks },
        redispatches: stats.redispatches,
        resetMs: [...stats.resetMs],
      };
    },
  };
}
