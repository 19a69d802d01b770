// Per-request stage durations, sent as a standard `Server-Timing` header (shown by browsers'
// developer tools, parsed by the benchmark for its per-stage breakdown). Stages are named after
// what they wait for: auth, ratelimit, meta (Redis), ledger (database), publish (JetStream PubAck),
// wait (the task itself, until the worker's terminal event wakes this process), read (the result).
// Only for a request that asks (`X-Server-Timing: 1`), unless NEUROAGENT_HTTP__SERVER_TIMING says
// always or never: the clock reads, the closures and the header string are work on every request.
import type { Context } from 'koa';

/** Where a request's stages are timed: a ServerTiming, or UNTIMED when nobody asked. */
export interface StageTimer {
  time<T>(name: string, work: Promise<T> | (() => Promise<T>)): Promise<T>;
  add(name: string, ms: number): void;
}

/** The request header that asks for Server-Timing (any non-empty value). */
export const TIMING_REQUEST_HEADER = 'x-server-timing';

export type ServerTimingMode = 'request' | 'always' | 'never';

/** Runs the work without measuring it. */
export const UNTIMED: StageTimer = {
  time: (_name, work) => (typeof work === 'function' ? work() : work),
  add: () => {},
};

export class ServerTiming implements StageTimer {
  readonly #entries: string[] = [];

  /** Records how long `work` took under `name`, whether it resolves or throws. */
  async time<T>(name: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
    const t0 = performance.now();
    try {
      return await (typeof work === 'function' ? work() : work);
    } finally {
      this.add(name, performance.now() - t0);
    }
  }

  add(name: string, ms: number): void {
    this.#entries.push(`${name};dur=${ms.toFixed(3)}`);
  }

  header(): string {
    return this.#entries.join(', ');
  }
}

/** Starts timing the request's stages when `mode` and the request say so. */
export function startTiming(ctx: Context, mode: ServerTimingMode): void {
  if (mode === 'always' || (mode === 'request' && ctx.get(TIMING_REQUEST_HEADER) !== '')) {
    ctx.state.timing = new ServerTiming();
  }
}

/** The request's timer: UNTIMED unless startTiming() began timing it. */
export function timingOf(ctx: Context): StageTimer {
  return ctx.state.timing ?? UNTIMED;
}
