// The connection options the hot path relies on, against the real test servers: a Redis command
// connection with auto-pipelining queues the commands of one turn and sends them together (each
// still gets its own reply), one without sends each at once; a NATS connection builds no async
// stack traces unless asked.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeRedis, connectNats, connectRedis, createLogger } from '../src/index.ts';
import { TEST_NATS_URL, TEST_REDIS_URL } from '../src/testing.ts';

const log = createLogger('connections-test', 'silent');

describe('hot-path connection options', () => {
  it('auto-pipelines the commands of one turn only when asked', async () => {
    const piped = connectRedis(TEST_REDIS_URL, 'pipelined-test', log, { autoPipelining: true });
    const plain = connectRedis(TEST_REDIS_URL, 'plain-test', log);
    try {
      await Promise.all([piped.ping(), plain.ping()]);
      const replies = [piped.echo('a'), piped.echo('b'), piped.echo('c')];
      assert.equal(piped.autoPipelineQueueSize, 3, 'queued for one write at the end of the turn');
      assert.deepEqual(await Promise.all(replies), ['a', 'b', 'c'], 'each command its own reply');
      const direct = plain.echo('d');
      assert.equal(plain.autoPipelineQueueSize, 0, 'sent at once');
      assert.equal(await direct, 'd');
    } finally {
      await closeRedis(piped);
      await closeRedis(plain);
    }
  });

  it('connects NATS without async stack traces by default, with them when asked', async () => {
    const lean = await connectNats({ url: TEST_NATS_URL }, 'lean-test', log);
    const traced = await connectNats({ url: TEST_NATS_URL, async_traces: true }, 'traced-test', log);
    try {
      const noTraces = (nc: unknown) =>
        (nc as { protocol: { options: { noAsyncTraces?: boolean } } }).protocol.options.noAsyncTraces;
      assert.equal(noTraces(lean), true);
      assert.equal(noTraces(traced), false);
    } finally {
      await lean.close();
      await traced.close();
    }
  });
});
