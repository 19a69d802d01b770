// When the gateway times a request's stages: only a request that asks (X-Server-Timing), unless
// NEUROAGENT_HTTP__SERVER_TIMING says always or never. An untimed request still runs every stage.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context } from 'koa';
import { type ServerTimingMode, startTiming, timingOf, UNTIMED } from '../src/server-timing.ts';

const request = (headers: Record<string, string>) =>
  ({ state: {}, get: (name: string) => headers[name.toLowerCase()] ?? '' }) as unknown as Context;

describe('Server-Timing modes', () => {
  const cases: [ServerTimingMode, boolean, boolean][] = [
    ['request', false, false],
    ['request', true, true],
    ['always', false, true],
    ['never', true, false],
  ];
  for (const [mode, asks, timed] of cases) {
    it(`${mode}, ${asks ? 'asked' : 'not asked'}: ${timed ? 'timed' : 'untimed'}`, async () => {
      const ctx = request(asks ? { 'x-server-timing': '1' } : {});
      startTiming(ctx, mode);
      const timer = timingOf(ctx);
      assert.equal(timer === UNTIMED, !timed);
      assert.equal(await timer.time('stage', async () => 42), 42, 'the stage runs either way');
      assert.equal(ctx.state.timing?.header().startsWith('stage;dur=') ?? false, timed);
    });
  }
});
