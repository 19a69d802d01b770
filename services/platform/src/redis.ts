// Redis connections: one server (the URL), a primary found through Redis Sentinel, or a Redis
// Cluster, chosen by RedisSettings (docs/operations.md, "Redis failover and Redis Cluster").
// Commands retry across reconnects and failovers; the caller decides what a failure means.
import { Cluster, Redis } from 'ioredis';
import { ConfigError } from './errors.ts';
import type { Logger } from './logger.ts';
import type { RedisSettings } from './settings.ts';

export type { Redis };

/** Where to connect: a URL alone, or the topology fields of RedisSettings. */
export type RedisTarget =
  | string
  | Pick<RedisSettings, 'url' | 'sentinels' | 'sentinel_name' | 'cluster_nodes'>;

export interface HostPort {
  host: string;
  port: number;
}

/** `a:1,[::1]:2` → hosts and ports (the settings' pattern has checked the shape). */
export function parseHostPorts(list: string): HostPort[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((entry) => {
      const colon = entry.lastIndexOf(':');
      const host = entry.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
      return { host, port: Number(entry.slice(colon + 1)) };
    });
}

export type RedisTopology = 'single' | 'sentinel' | 'cluster';

export function redisTopology(target: RedisTarget): RedisTopology {
  if (typeof target === 'string') return 'single';
  if (target.sentinels !== '' && target.cluster_nodes !== '') {
    throw new ConfigError('invalid configuration: REDIS__SENTINELS and REDIS__CLUSTER_NODES are exclusive', [
      { path: 'REDIS__SENTINELS', message: 'set SENTINELS or CLUSTER_NODES, not both' },
    ]);
  }
  if (target.cluster_nodes !== '') return 'cluster';
  return target.sentinels !== '' ? 'sentinel' : 'single';
}

// Fail commands fast while disconnected instead of queueing them for ever: callers map this to
// 503 (gateway) or nak (worker).
const MAX_RETRIES_PER_REQUEST = 2;
const retryStrategy = (times: number) => Math.min(times * 200, 2000);

/**
 * Opens a connection. A Cluster client is returned under the Redis type: ioredis gives both the
 * same command methods (a union of the two is not callable in TypeScript, their overloads differ),
 * and the few places that must behave differently check `isCluster`. Keys of one command must
 * then share a hash slot (Names gives every key of a task one hash tag).
 */
export function connectRedis(
  target: RedisTarget,
  name: string,
  log: Logger,
  options: { autoPipelining?: boolean } = {},
): Redis {
  const topology = redisTopology(target);
  const url = new URL(typeof target === 'string' ? target : target.url);
  const auth = {
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
  };
  const common = {
    connectionName: name,
    maxRetriesPerRequest: MAX_RETRIES_PER_REQUEST,
    enableOfflineQueue: true,
    // Never on a connection that blocks (XREAD BLOCK): the commands batched behind it would wait.
    enableAutoPipelining: options.autoPipelining ?? false,
    ...auth,
  };
  let redis: Redis;
  if (typeof target === 'string' || topology === 'single') {
    redis = new Redis(url.toString(), { ...common, lazyConnect: false, retryStrategy });
  } else if (topology === 'sentinel') {
    redis = new Redis({
      ...common,
      sentinels: parseHostPorts(target.sentinels),
      name: target.sentinel_name,
      db: Number(url.pathname.slice(1) || 0),
      sentinelRetryStrategy: retryStrategy,
      retryStrategy,
      // Subscribes to the sentinels' +switch-master, so a failover is followed at once rather
      // than when the dead primary's socket finally errors.
      failoverDetector: true,
    });
  } else {
    if (url.pathname.length > 1 && url.pathname !== '/0')
      log.warn({ url: url.pathname }, 'a Redis Cluster has only database 0: the URL database is ignored');
    const cluster = new Cluster(parseHostPorts(target.cluster_nodes), {
      redisOptions: common,
      enableAutoPipelining: common.enableAutoPipelining,
      clusterRetryStrategy: retryStrategy,
      enableOfflineQueue: true,
      // A MOVED/ASK during a failover is retried on the new owner of the slot.
      maxRedirections: 16,
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 200,
      scaleReads: 'master',
    });
    redis = cluster as unknown as Redis;
  }
  let lastError = '';
  redis.on('error', (err: Error) => {
    if (err.message !== lastError) log.warn({ err, connection: name }, 'redis connection error');
    lastError = err.message;
  });
  redis.on('ready', () => {
    if (lastError !== '') log.info({ connection: name }, 'redis reconnected');
    lastError = '';
  });
  return redis;
}

/** Closes a connection: QUIT when it can be delivered (replies flushed), else drop it. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
}
