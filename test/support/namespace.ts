// Connections for system tests to inspect and clean up their private namespace.
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import {
  connectRedis,
  createLogger,
  createTaskReader,
  type Redis,
  type TaskReader,
} from '@neuroagent/platform';
import {
  cleanupNamespace,
  TEST_NATS_URL,
  type TestNamespace,
  testRedisTarget,
} from '@neuroagent/platform/testing';

export interface TestClients {
  nc: NatsConnection;
  js: JetStreamClient;
  redis: Redis;
  store: TaskReader;
  close(): Promise<void>;
}

export async function testClients(ns: TestNamespace): Promise<TestClients> {
  const nc = await connect({ servers: TEST_NATS_URL });
  const redis = connectRedis(testRedisTarget(), `test-${ns.id}`, createLogger('test', 'silent'));
  const store = createTaskReader(redis, { names: ns.names, ttlS: 600 });
  return {
    nc,
    js: jetstream(nc),
    redis,
    store,
    async close() {
      await cleanupNamespace(ns, nc, redis);
      await nc.close();
      await redis.quit();
    },
  };
}
