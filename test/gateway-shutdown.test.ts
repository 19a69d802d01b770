// Graceful shutdown of the gateway on SIGTERM: it stops accepting requests, answers its long polls
// 202 (the task id is the client's way back), ends SSE streams, closes its connections and exits 0.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testNamespace } from '@neuroagent/platform/testing';
import { gatewaySuite } from './support/gateway-suite.ts';

describe('gateway shutdown on SIGTERM', () => {
  const ns = testNamespace('shutdown');
  const suite = gatewaySuite(ns);

  it('answers waiting long polls with 202, ends SSE streams, and exits 0', async () => {
    const { gateway } = suite;
    // No worker runs: the task stays pending.
    const submitted = await fetch(`${gateway.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'run_python', input: { python_script: '1' } }),
    });
    const { task_id: id } = (await submitted.json()) as { task_id: string };
    const poll = fetch(`${gateway.url}/tasks/${id}?wait=30`);
    const events = await fetch(`${gateway.url}/tasks/${id}/events`);
    assert.equal(events.status, 200);
    const eventsText = events.text();
    await new Promise((r) => setTimeout(r, 300)); // both are now waiting in the hub
    const t0 = performance.now();
    gateway.proc.kill('SIGTERM');
    const res = await poll;
    assert.equal(res.status, 202);
    assert.equal(((await res.json()) as { id: string }).id, id);
    await eventsText; // resolves once the server ends the stream
    assert.equal(await gateway.exited, 0);
    assert.ok(performance.now() - t0 < 5000, 'shut down well within the grace period');
    await assert.rejects(fetch(`${gateway.url}/healthz`), 'no longer accepting connections');
  });
});
