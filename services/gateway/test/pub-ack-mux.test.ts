// The PubAck mux against the real test NATS server: every publish gets its own PubAck through the
// one shared subscription, a duplicate message id is reported as such, a publish nobody answers
// times out (and its late answer is dropped), close() fails what still waits, and an answer that
// is not a PubAck (garbled, or forged on the inbox) is an error, never a stored task.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { TEST_NATS_URL } from '@neuroagent/platform/testing';
import {
  createPubAckMux,
  PublishMuxClosedError,
  PublishNoRespondersError,
  readPubAck,
} from '../src/pub-ack-mux.ts';

const enc = new TextEncoder();

describe('PubAck mux', () => {
  let nc: NatsConnection;
  const suffix = `${process.pid}_${Date.now()}`;
  const stream = `PUBMUX_${suffix}`;
  const subject = (t: string) => `pubmux${suffix}.${t}`;
  before(async () => {
    nc = await connect({ servers: TEST_NATS_URL });
    await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`pubmux${suffix}.>`] });
  });
  after(async () => {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => {});
    await nc.close();
  });

  it('routes each of many concurrent PubAcks to its own publish', async () => {
    const mux = createPubAckMux(nc);
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        mux.publish(subject('many'), `m${i}`, { msgID: `many-${i}`, headers: headers(), timeoutMs: 5000 }),
      ),
    );
    assert.equal(new Set(acks.map((a) => a.seq)).size, 200, 'one sequence per message');
    assert.ok(acks.every((a) => a.stream === stream && a.duplicate === false));
    assert.equal(mux.pending, 0);
    const again = await mux.publish(subject('many'), 'm0', {
      msgID: 'many-0',
      headers: headers(),
      timeoutMs: 5000,
    });
    assert.equal(again.duplicate, true);
    assert.equal(again.seq, acks[0]?.seq, 'the stored copy');
    mux.close();
  });

  it('answers no responders at once for a subject no stream stores', async () => {
    const mux = createPubAckMux(nc);
    const started = performance.now();
    await assert.rejects(
      mux.publish(`nostream${suffix}.x`, 'b', { msgID: 'n1', headers: headers(), timeoutMs: 5000 }),
      PublishNoRespondersError,
    );
    assert.ok(performance.now() - started < 2000, 'at once, not after the timeout');
    mux.close();
  });

  it('times out a publish nobody answers, and drops the late answer', async () => {
    const mux = createPubAckMux(nc);
    const silent = nc.subscribe(`silent${suffix}.x`, { max: 1 });
    let replyTo = '';
    const heard = (async () => {
      for await (const m of silent) replyTo = m.reply ?? '';
    })();
    await nc.flush();
    await assert.rejects(
      mux.publish(`silent${suffix}.x`, 'b', { msgID: 's1', headers: headers(), timeoutMs: 200 }),
      (err: Error) => err.name === 'TimeoutError',
    );
    await heard;
    assert.notEqual(replyTo, '');
    assert.equal(mux.pending, 0, 'the timed-out publish is forgotten');
    // A late answer finds nobody waiting: nothing throws, nothing else settles.
    nc.publish(replyTo, enc.encode(JSON.stringify({ stream, seq: 99 })));
    await nc.flush();
    const ok = await mux.publish(subject('after'), 'b', {
      msgID: 'after-1',
      headers: headers(),
      timeoutMs: 5000,
    });
    assert.equal(ok.stream, stream);
    mux.close();
  });

  it('fails what still waits when closed, and refuses publishes after', async () => {
    const mux = createPubAckMux(nc);
    const silent = nc.subscribe(`closing${suffix}.x`, { max: 1 });
    await nc.flush();
    const waiting = mux.publish(`closing${suffix}.x`, 'b', {
      msgID: 'c1',
      headers: headers(),
      timeoutMs: 10_000,
    });
    await nc.flush();
    mux.close();
    await assert.rejects(waiting, PublishMuxClosedError);
    await assert.rejects(
      mux.publish(subject('closed'), 'b', { msgID: 'c2', headers: headers(), timeoutMs: 1000 }),
      PublishMuxClosedError,
    );
    silent.unsubscribe();
  });

  it('reads an answer that is not a PubAck as an error', () => {
    const answer = (body: string, code?: number) =>
      readPubAck(
        { data: enc.encode(body), headers: code === undefined ? undefined : ({ code } as never) },
        's',
      );
    assert.ok(answer('', 503) instanceof PublishNoRespondersError);
    assert.match(String(answer('not json')), /not a PubAck/);
    assert.match(String(answer('{"stream":"S"}')), /invalid PubAck/);
    assert.match(String(answer('{"seq":3}')), /invalid PubAck/);
    assert.match(String(answer('[1,2]')), /invalid PubAck/);
    const refused = answer(
      '{"error":{"code":400,"err_code":10054,"description":"maximum message size exceeded"}}',
    );
    assert.equal((refused as Error).name, 'JetStreamApiError');
    assert.equal((refused as { status?: number }).status, 400);
    assert.deepEqual(answer('{"stream":"S","seq":7,"duplicate":true,"domain":"d"}'), {
      stream: 'S',
      seq: 7,
      duplicate: true,
      domain: 'd',
    });
  });
});
