// One pino root per process; modules take `log.child({ module })`. JSON lines on stdout. While a
// span is active (tracing.ts), each line also carries its `trace_id` and `span_id`.
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { activeTraceIds } from './tracing.ts';

export type { Logger };

// The mixin's answer when no span is active: the merge below returns the line's object untouched,
// so a process without tracing pays two calls per line and copies nothing.
const NO_TRACE = {};

/** `destination` is stdout unless a test passes its own stream. */
export function createLogger(
  service: string,
  level: string = 'info',
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: () => activeTraceIds() ?? NO_TRACE,
    // pino's default merge copies the line's object into the mixin's (never mutating the caller's).
    mixinMergeStrategy: (line, ids) => (ids === NO_TRACE ? line : Object.assign(ids, line)),
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
