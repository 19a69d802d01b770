// Gateway process entry: the only place that reads process.env, connects, listens and exits.
// Stop order matters: stop accepting requests, release long-poll waiters (they answer 202), then
// drain NATS and close Redis.
import { createServer } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { createNames } from '@neuroagent/contracts';
import {
  type ConfigError,
  connectNats,
  connectRedis,
  createLogger,
  createTaskStore,
  ensureStreams,
  jetstreamManager,
  onShutdownSignal,
} from '@neuroagent/platform';
import { createApp } from './app.ts';
import { type GatewayConfig, loadGatewayConfig } from './config.ts';
import { createProgressHub } from './progress-hub.ts';
import { createTaskSubmitter } from './task-submitter.ts';

async function main(): Promise<void> {
  let config: Readonly<GatewayConfig>;
  try {
    config = loadGatewayConfig(process.env);
  } catch (err) {
    process.stderr.write(`gateway: ${(err as ConfigError).message}\n`);
    process.exit(78);
  }
  const log = createLogger('gateway', config.log.level);
  const names = createNames({
    stream: config.nats.stream,
    subjectPrefix: config.nats.subject_prefix,
    keyPrefix: config.redis.key_prefix,
  });

  const nc = await connectNats(config.nats, 'gateway', log);
  const jsm = await jetstreamManager(nc);
  if (config.nats.provision) await ensureStreams(jsm, { names, nats: config.nats }, log);
  const redis = connectRedis(config.redis.url, 'gateway', log);
  const blocking = connectRedis(config.redis.url, 'gateway-longpoll', log);
  const store = createTaskStore(redis, {
    names,
    ttlS: config.tasks.ttl_s,
    progressMaxLen: 100,
    eventsMaxLen: 100000,
  });
  const hub = createProgressHub({
    blocking,
    commands: redis,
    names,
    blockMs: config.long_poll.block_ms,
    log,
  });
  const submitter = createTaskSubmitter({
    js: jetstream(nc),
    names,
    store,
    deadlineS: config.tasks.deadline_s,
    publishTimeoutMs: config.nats.publish_timeout_ms,
    log,
  });
  const app = createApp({
    config,
    store,
    hub,
    submitter,
    log,
    readiness: {
      nats: () => nc.rtt(),
      redis: () => redis.ping(),
      stream: () => jsm.streams.info(names.stream),
    },
  });

  const server = createServer(app.callback());
  // Long polls last up to the tool timeout; Node's default request timeout (300 s) must not cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  log.info({ url: `http://${config.http.host}:${port}` }, 'gateway listening');

  onShutdownSignal(
    async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Waiters resolve at once and answer 202 with the task id, so no client loses its task.
      await hub.close();
      await closed;
      await nc.drain();
      blocking.disconnect();
      await redis.quit();
      log.info('gateway stopped');
    },
    log,
    config.http.shutdown_grace_s * 1000,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(
    `gateway: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
