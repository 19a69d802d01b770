// One Server-Sent Events response: the headers that keep proxies from buffering it, a comment
// line every 15 s so they do not close it while idle, and one end that runs its cleanups once,
// whether the events ran out, the client left or the gateway shuts down.
import { PassThrough } from 'node:stream';
import type { Context } from 'koa';

/** Milliseconds between SSE comment lines, so proxies do not close an idle stream. */
export const SSE_KEEPALIVE_MS = 15_000;

export interface EventStream {
  /** Writes one frame; `data` must be one line (JSON is). Ignored once ended. */
  send(id: string, event: string, data: string): void;
  /** Runs `cleanup` when the stream ends (after the ones registered before it). */
  onEnd(cleanup: () => void): void;
  end(): void;
  readonly ended: boolean;
}

export function openEventStream(ctx: Context): EventStream {
  const stream = new PassThrough();
  ctx.status = 200;
  ctx.type = 'text/event-stream';
  ctx.set('cache-control', 'no-cache');
  ctx.set('x-accel-buffering', 'no');
  ctx.body = stream;
  const keepalive = setInterval(() => stream.write(': keep-alive\n\n'), SSE_KEEPALIVE_MS);
  const cleanups: (() => void)[] = [];
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepalive);
    for (const cleanup of cleanups) cleanup();
    stream.end();
  };
  // The response's close: the request's fires once its body is read, not when the client leaves.
  ctx.res.once('close', end);
  return {
    send(id, event, data) {
      if (!ended) stream.write(`id: ${id}\nevent: ${event}\ndata: ${data}\n\n`);
    },
    onEnd: (cleanup) => cleanups.push(cleanup),
    end,
    get ended() {
      return ended;
    },
  };
}
