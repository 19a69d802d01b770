// publishWithRetry against the real test NATS server: a publish nobody can store yet (no stream
// leader, here: no stream yet) is retried until the stream appears, storing one copy; an answer
// that will not change (a refused message) is not retried; an attempt nobody answers is sent again
// after its own timeout; the budget bounds every attempt.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { TEST_NATS_URL } from '@neuroagent/platform/testing';
import { isLeaderless, publishWithRetry } from '../src/jetstream-publish.ts';
import { createPubAckMux, type PubAckMux } from '../src/pub-ack-mux.ts';

describe('publishWithRetry', () => {
  let nc: NatsConnection;
  let mux: PubAckMux;
  const suffix = `${process.pid}_${Date.now()}`;
  const streams: string[] = [];
  before(async () => {
    nc = await connect({ servers: TEST_NATS_URL });
    mux = createPubAckMux(nc);
  });
  after(async () => {
    const jsm = await jetstreamManager(nc);
    for (const s of streams) await jsm.streams.delete(s).catch(() => {});
    mux.close();
    await nc.close();
  });

  it('retries while nobody can store the task, then stores exactly one copy', async () => {
    const name = `PUBRETRY_${suffix}`;
    const subject = `pubretry${suffix}.a`;
    const jsm = await jetstreamManager(nc);
    streams.push(name);
    const retries: unknown[] = [];
    const publishing = publishWithRetry(mux, subject, 'body', {
      msgID: 'task-1',
      headers: headers(),
      timeoutMs: 10_000,
      retryMs: 100,
      attemptTimeoutMs: 1000,
      onRetry: (_attempt, err) => retries.push(err),
    });
    await sleep(700);
    await jsm.streams.add({ name, subjects: [`pubretry${suffix}.>`] });
    const ack = await publishing;
    assert.equal(ack.stream, name);
    assert.equal(ack.seq, 1);
    assert.ok(retries.length >= 3, `${retries.length} retries`);
    assert.ok(retries.every(isLeaderless));
    const again = await publishWithRetry(mux, subject, 'body', {
      msgID: 'task-1',
      headers: headers(),
      timeoutMs: 2000,
      retryMs: 100,
      attemptTimeoutMs: 1000,
    });
    assert.equal(again.duplicate, true, 'the same message id is stored once');
    assert.equal((await jsm.streams.info(name)).state.messages, 1);
  });

  it('gives up when the budget is spent, with the last answer', async () => {
    let attempts = 0;
    const started = performance.now();
    await assert.rejects(
      publishWithRetry(mux, `nostream${suffix}.x`, 'body', {
        msgID: 'task-2',
        headers: headers(),
        timeoutMs: 600,
        retryMs: 100,
        attemptTimeoutMs: 1000,
        onRetry: () => {
          attempts++;
        },
      }),
      (err: Error) => err.name === 'PublishNoRespondersError',
    );
    assert.ok(attempts >= 2, `${attempts} retries`);
    assert.ok(performance.now() - started >= 450, 'it kept trying for most of the budget');
  });

  it('sends again an attempt nobody answered, after its own timeout, within the budget', async () => {
    const name = `PUBLOST_${suffix}`;
    const subject = `publost${suffix}.a`;
    streams.push(name);
    // A responder that swallows the first request: as if the node holding it died before answering.
    const blackHole = nc.subscribe(subject, { max: 1 });
    const swallowed = (async () => {
      for await (const _ of blackHole) {
        await (await jetstreamManager(nc)).streams.add({ name, subjects: [`publost${suffix}.>`] });
      }
    })();
    await nc.flush();
    const retries: unknown[] = [];
    const started = performance.now();
    const ack = await publishWithRetry(mux, subject, 'body', {
      msgID: 'task-4',
      headers: headers(),
      timeoutMs: 10_000,
      retryMs: 100,
      attemptTimeoutMs: 300,
      onRetry: (_attempt, err) => retries.push(err),
    });
    await swallowed;
    const took = performance.now() - started;
    assert.equal(ack.stream, name);
    assert.equal(ack.seq, 1);
    assert.equal(retries.length, 1);
    assert.equal((retries[0] as Error).name, 'TimeoutError');
    assert.ok(took >= 250 && took < 5000, `stored after ${Math.round(took)} ms, not the whole budget`);
  });

  it('does not retry an answer that will not change', async () => {
    const name = `PUBREFUSE_${suffix}`;
    streams.push(name);
    await (await jetstreamManager(nc)).streams.add({
      name,
      subjects: [`pubrefuse${suffix}.>`],
      max_msg_size: 8,
    });
    let attempts = 0;
    await assert.rejects(
      publishWithRetry(mux, `pubrefuse${suffix}.a`, 'a body longer than eight bytes', {
        msgID: 'task-3',
        headers: headers(),
        timeoutMs: 5000,
        retryMs: 100,
        attemptTimeoutMs: 1000,
        onRetry: () => {
          attempts++;
        },
      }),
      (err: unknown) => !isLeaderless(err),
    );
    assert.equal(attempts, 0);
  });
});
