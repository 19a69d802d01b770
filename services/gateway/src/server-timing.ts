// Per-request stage durations, sent as a standard `Server-Timing` header (shown by browsers'
// developer tools, parsed by the benchmark for its per-stage breakdown). Stages are named after
// what they wait for: auth, ratelimit, meta (Redis), ledger (database), publish (JetStream PubAck),
// wait (the task itself, until the worker's terminal event wakes this process), read (the result).
import type { Context } from 'koa';

export class ServerTiming {
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

/** The request's timing, created on first use. */
export function timingOf(ctx: Context): ServerTiming {
  ctx.state.timing ??= new ServerTiming();
  return ctx.state.timing;
}
