// Redis connections. Commands retry across reconnects; the caller decides what a failure means.
import { Redis } from 'ioredis';
import type { Logger } from './logger.ts';

export type { Redis };

export function connectRedis(url: string, name: string, log: Logger): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    lazyConnect: false,
    // Fail commands fast while disconnected instead of queueing them for ever: callers map this
    // to 503 (gateway) or nak (worker).
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  let lastError = '';
  redis.on('error', (err: Error) => {
    if (err.message !== lastError) log.warn({ err }, 'redis connection error');
    lastError = err.message;
  });
  redis.on('ready', () => {
    if (lastError !== '') log.info({ connection: name }, 'redis reconnected');
    lastError = '';
  });
  return redis;
}
