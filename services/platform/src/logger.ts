// One pino root per process; modules take `log.child({ module })`. JSON lines on stdout. While a
// span is active (tracing.ts), each line also carries its `trace_id` and `span_id`.
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { activeTraceIds } from './tracing.ts';

export type { Logger };

// The mixin's answer when no span is active: the merge below returns the line's object untouched,
// so a process without tracing pays two calls per line and copies nothing.
const NO_TRACE = {};

/**
 * `out` (stdout), with the lines logged in one event-loop turn written together: under load many requests
 * log in the same turn, and each write is a system call (one per line was a visible share of the
 * gateway's CPU per task). A line waits at most for the end of its turn, and the rest is written
 * when the process exits, however it exits short of SIGKILL.
 */
export function turnBatched(out: { write(chunk: string): unknown }): DestinationStream {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const lines = pending.join('');
    pending = [];
    out.write(lines);
  };
  process.once('exit', flush);
  return {
    write(line: string) {
      if (pending.push(line) === 1) setImmediate(flush);
    },
  };
}

/**
 * `destination` is stdout (line by line, or turn by turn with `batchWrites`) unless a test passes
 * its own stream.
 */
export function createLogger(
  service: string,
  level: string = 'info',
  destination?: DestinationStream,
  opts: { batchWrites?: boolean } = {},
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: () => activeTraceIds() ?? NO_TRACE,
    // pino's default merge copies the line's object into the mixin's (never mutating the caller's).
    mixinMergeStrategy: (line, ids) => (ids === NO_TRACE ? line : Object.assign(ids, line)),
  };
  if (destination !== undefined) return pino(options, destination);
  if (!opts.batchWrites) return pino(options);
  return pino(options, turnBatched(pino.destination({ dest: 1, sync: true })));
}
