// Test support shared by every package's tests: a private stream, subject prefix and Redis key
// prefix per test run, so runs never collide with each other or with a developer's `npm start`.
// Imported by tests only, never by service code.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import { createNames, HEADERS, type Names } from '@neuroagent/contracts';
import type { Cluster, Redis } from 'ioredis';
import type { RedisTarget } from './redis.ts';
import { createTaskSigner } from './signing.ts';

export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
/**
 * Set by a test that runs a whole suite against a Redis Cluster (test/redis-cluster.e2e.test.ts):
 * the seed nodes and tasks:events shards every client, gateway and worker of the suite then uses.
 */
export const TEST_REDIS_CLUSTER_NODES = process.env.TEST_REDIS_CLUSTER_NODES ?? '';
export const TEST_REDIS_EVENTS_SHARDS = Number(process.env.TEST_REDIS_EVENTS_SHARDS ?? '1');

/** Where the tests' own Redis clients connect (connectRedis takes it). */
export function testRedisTarget(): RedisTarget {
  return {
    url: TEST_REDIS_URL,
    sentinels: '',
    sentinel_name: 'mymaster',
    cluster_nodes: TEST_REDIS_CLUSTER_NODES,
  };
}

/** The topology variables of a service under `prefix` (empty on the single default server). */
function redisTopologyEnv(prefix: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (TEST_REDIS_CLUSTER_NODES !== '') env[`${prefix}_REDIS__CLUSTER_NODES`] = TEST_REDIS_CLUSTER_NODES;
  if (TEST_REDIS_EVENTS_SHARDS !== 1)
    env[`${prefix}_REDIS__EVENTS_SHARDS`] = String(TEST_REDIS_EVENTS_SHARDS);
  return env;
}

export interface TestNamespace {
  id: string;
  stream: string;
  subjectPrefix: string;
  keyPrefix: string;
  names: Names;
  /** The task signing key the namespace's gateway and workers share (NATS__SIGNING_KEY). */
  signingKey: string;
}

export function testNamespace(label: string): TestNamespace {
  const id = `${label}_${randomBytes(4).toString('hex')}`.replace(/[^A-Za-z0-9_]/g, '_');
  const stream = `T_${id}`.toUpperCase();
  const subjectPrefix = `t_${id}`.toLowerCase();
  const keyPrefix = `test:${id}:`;
  const signingKey = randomBytes(32).toString('base64url');
  const names = createNames({ stream, subjectPrefix, keyPrefix, eventsShards: TEST_REDIS_EVENTS_SHARDS });
  return { id, stream, subjectPrefix, keyPrefix, names, signingKey };
}

/** Adds the Task-Signature the namespace's gateway would set, for a test that publishes by hand. */
export function signTaskHeaders(
  ns: TestNamespace,
  taskId: string,
  body: string | Uint8Array,
  h: MsgHdrs,
): MsgHdrs {
  h.set(HEADERS.taskSignature, createTaskSigner(ns.signingKey).sign(taskId, body));
  return h;
}

/** Env for a worker process bound to the namespace, with fast test-friendly timings. */
export function workerEnv(ns: TestNamespace, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    TASKS_NATS__URL: TEST_NATS_URL,
    TASKS_REDIS__URL: TEST_REDIS_URL,
    TASKS_NATS__STREAM: ns.stream,
    TASKS_NATS__SUBJECT_PREFIX: ns.subjectPrefix,
    TASKS_REDIS__KEY_PREFIX: ns.keyPrefix,
    TASKS_NATS__STREAM_MAX_AGE_S: '3600',
    TASKS_NATS__FETCH_EXPIRES_MS: '1000',
    TASKS_NATS__SIGNING_KEY: ns.signingKey,
    TASKS_LOG__LEVEL: 'info',
    ...redisTopologyEnv('TASKS'),
    ...extra,
  };
}

export function gatewayEnv(ns: TestNamespace, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NEUROAGENT_NATS__URL: TEST_NATS_URL,
    NEUROAGENT_REDIS__URL: TEST_REDIS_URL,
    NEUROAGENT_NATS__STREAM: ns.stream,
    NEUROAGENT_NATS__SUBJECT_PREFIX: ns.subjectPrefix,
    NEUROAGENT_REDIS__KEY_PREFIX: ns.keyPrefix,
    NEUROAGENT_NATS__STREAM_MAX_AGE_S: '3600',
    NEUROAGENT_NATS__SIGNING_KEY: ns.signingKey,
    NEUROAGENT_LOG__LEVEL: 'warn',
    // Tests of other features run as the anonymous user without limits; auth and rate-limit tests
    // switch these back on.
    NEUROAGENT_AUTH__DISABLED: 'true',
    NEUROAGENT_RATE_LIMIT__DISABLED: 'true',
    // A private SQLite ledger per namespace (PostgreSQL is tested by the ledger suite).
    NEUROAGENT_DB__URL: `sqlite:${join(tmpdir(), `neuroagent-ledger-${ns.id}.sqlite`)}`,
    ...redisTopologyEnv('NEUROAGENT'),
    ...extra,
  };
}

/** Deletes the namespace's streams and Redis keys. Safe to call when some were never created. */
export async function cleanupNamespace(ns: TestNamespace, nc: NatsConnection, redis: Redis): Promise<void> {
  const jsm = await jetstreamManager(nc);
  // The queue-control bucket is the stream KV_<bucket> (queue-control.ts).
  for (const s of [ns.names.stream, ns.names.dlqStream, `KV_${ns.names.controlBucket}`]) {
    await jsm.streams.delete(s).catch(() => false);
  }
  // A cluster client's SCAN sees one node: scan every primary, and delete key by key (one slot each).
  const servers = redis.isCluster ? (redis as unknown as Cluster).nodes('master') : [redis];
  for (const server of servers) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', `${ns.keyPrefix}*`, 'COUNT', 500);
      cursor = next;
      if (redis.isCluster) for (const key of keys) await redis.del(key);
      else if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  }
}

export async function waitFor<T>(
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
