// A Sentinel-managed connection in the two states where ioredis alone never recovers, on a real
// primary, replica and three sentinels:
//   - the connector told to disconnect (as ioredis's failover detector does on +switch-master)
//     while the connection still asks the sentinels for the primary: ioredis ends the connection
//     for good; ours reopens it;
//   - a sentinel that accepts the connection but never answers (SIGSTOP): ioredis waits on it for
//     ever; ours gives up after REDIS__SENTINEL_TIMEOUT_MS and asks the next one.
// An owner's own disconnect() or quit() still closes a connection for good.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeRedis, connectRedis, createLogger, type Redis } from '@neuroagent/platform';
import { waitFor } from '@neuroagent/platform/testing';
import { ask, type SentinelSet, startSentinelSet } from './support/redis-topologies.ts';

const log = createLogger('sentinel-reconnect-test', 'silent');

describe('a Sentinel-managed Redis connection', () => {
  let set: SentinelSet;
  before(async () => {
    set = await startSentinelSet('reconnect');
  });
  after(async () => {
    await set?.close();
  });

  const open = async (name: string, sentinelTimeoutMs: number): Promise<Redis> => {
    const redis = connectRedis(
      {
        url: 'redis://sentinel-managed:1/0',
        sentinels: set.sentinelList,
        sentinel_name: set.masterName,
        cluster_nodes: '',
        sentinel_timeout_ms: sentinelTimeoutMs,
      },
      name,
      log,
    );
    await waitFor(async () => (redis.status === 'ready' ? true : null), 10_000, `${name} ready`, 20);
    return redis;
  };
  // Drops every normal client of the primary (not the one asking), as a network blip would.
  const dropClientsOf = async (port: number) => {
    await ask(port, 'CLIENT', 'KILL', 'TYPE', 'normal');
  };

  it('reopens itself when ioredis ends it while it looks for the primary', async () => {
    // The first sentinel it asks is frozen, so its search for the primary lasts the whole
    // sentinel timeout. Inside that window the connector is told to disconnect, which is what
    // ioredis's failover detector does on +switch-master (FailoverDetector.disconnect): the
    // pending connect then rejects with "Connection is closed." and ioredis ends the client.
    const redis = await open('ended-while-connecting', 2000);
    // Not events.once: the 'error' ioredis emits just before it ends would reject that.
    const ended = new Promise<void>((resolve) => redis.once('end', () => resolve()));
    const [first] = set.sentinels;
    assert.ok(first);
    try {
      const primaryPort = await set.currentPrimaryPort(); // asks the first sentinel: before pause()
      first.pause();
      await dropClientsOf(primaryPort);
      await waitFor(async () => (redis.status === 'connecting' ? true : null), 5000, 'a reconnect', 5);
      (redis as unknown as { connector: { disconnect(): void } }).connector.disconnect();
      await Promise.race([
        ended,
        sleep(20_000).then(() => Promise.reject(new Error(`still ${redis.status}, not ended`))),
      ]);
      first.resume();
      await waitFor(
        async () => (redis.status === 'ready' ? true : null),
        20_000,
        'the connection reopened',
        50,
      );
      await redis.set('reconnect:probe', 'reopened');
      assert.equal(await redis.get('reconnect:probe'), 'reopened');
    } finally {
      first.resume();
      await closeRedis(redis);
    }
  });

  it('asks the next sentinel when one accepts the connection but never answers', async () => {
    const redis = await open('frozen-sentinel', 300);
    const [first] = set.sentinels;
    assert.ok(first);
    try {
      const primaryPort = await set.currentPrimaryPort();
      first.pause();
      await dropClientsOf(primaryPort);
      await waitFor(async () => (redis.status !== 'ready' ? true : null), 5000, 'the drop to be seen', 10);
      await waitFor(
        async () => (redis.status === 'ready' ? true : null),
        10_000,
        'ready through another',
        20,
      );
      assert.equal(await redis.ping(), 'PONG');
    } finally {
      first.resume();
      await closeRedis(redis);
    }
  });

  it('stays closed once its owner closes it, by disconnect() or by quit()', async () => {
    const dropped = await open('dropped-by-owner', 1000);
    const quitted = await open('quit-by-owner', 1000);
    dropped.disconnect();
    await closeRedis(quitted);
    await sleep(1000);
    assert.equal(dropped.status, 'end');
    assert.equal(quitted.status, 'end');
  });
});
