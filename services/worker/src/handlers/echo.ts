// echo: returns its payload, after `delay_ms` if asked. No work of its own, so it measures and
// probes the task machinery; the delay ends early on cancellation or shutdown (the consumer then
// records the cancel or hands the message back).
import { setTimeout as sleep } from 'node:timers/promises';
import type { HandlerFactory } from './types.ts';

export const createEchoHandler: HandlerFactory<'echo'> = async ({ config }) => ({
  concurrency: config.echo.concurrency,
  async run(input, ctx) {
    if (input.delay_ms) await sleep(input.delay_ms, undefined, { signal: ctx.signal });
    return input.payload === undefined
      ? { attempt: ctx.attempt }
      : { payload: input.payload, attempt: ctx.attempt };
  },
  async close() {},
});
