// Worker process entry: the only place that reads process.env, wires dependencies and exits.
// Step 1: config. Step 2: connect and provision. Step 3: load the handlers of our queues and
// consume. Stop runs in reverse: stop pulling, settle in-flight tasks, close handlers, drain NATS,
// close Redis.
import { utimes, writeFile } from 'node:fs/promises';
import { jetstream } from '@nats-io/jetstream';
import { type QueueName, type TaskName, tasksOfQueue } from '@neuroagent/contracts';
import {
  ConfigError,
  closeRedis,
  connectNats,
  connectRedis,
  createLogger,
  createTaskWriter,
  jetstreamManager,
  loadTaskSigner,
  onShutdownSignal,
  openQueueControl,
  type SigningKeyError,
  startTracing,
  type TaskSigner,
  type Tracing,
} from '@neuroagent/platform';
import { loadWorkerConfig, type WorkerConfig } from './config.ts';
import { createQueueConsumer, type QueueConsumer, WORKER_ID } from './consumer.ts';
import { HANDLER_FACTORIES } from './handlers/registry.ts';
import type { HandlerDeps, HandlerMap, TaskHandler } from './handlers/types.ts';
import { startHeartbeat } from './heartbeat.ts';
import { createWorkerMetrics, serveWorkerMetrics } from './metrics.ts';
import { provisionQueues, workerNames } from './provisioning.ts';
import { unservedQueueMessage } from './queue-check.ts';

async function main(): Promise<void> {
  let config: Readonly<WorkerConfig>;
  try {
    config = loadWorkerConfig(process.env);
  } catch (err) {
    process.stderr.write(`worker: ${(err as ConfigError).message}\n`);
    process.exit(78);
  }
  const log = createLogger('worker', config.log.level, undefined, { batchWrites: config.log.batch_writes });
  let signer: TaskSigner;
  try {
    signer = loadTaskSigner(config.nats, 'TASKS_');
  } catch (err) {
    log.fatal({ code: (err as SigningKeyError).code }, (err as SigningKeyError).message);
    process.exit(78);
  }

  const unserved = unservedQueueMessage(config.queues);
  if (unserved) {
    log.fatal({ queues: config.queues }, unserved);
    process.exit(78);
  }

  let tracing: Tracing | null;
  try {
    // Before anything connects (off unless an OTLP endpoint is set).
    tracing = await startTracing(process.env, { serviceName: 'worker', log });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.fatal({ code: err.code }, err.message);
    process.exit(78);
  }

  const names = workerNames(config);
  const nc = await connectNats(config.nats, `worker:${config.queues.join(',')}`, log);
  const redis = connectRedis(config.redis, 'worker', log, { autoPipelining: config.redis.auto_pipelining });
  const store = createTaskWriter(redis, {
    names,
    ttlS: config.result_ttl_s,
    progressMaxLen: config.redis.progress_maxlen,
    eventsMaxLen: config.redis.events_maxlen,
    recordInlineMaxBytes: config.redis.event_record_max_bytes,
    waitReplicas: config.redis.wait_replicas,
    waitTimeoutMs: config.redis.wait_timeout_ms,
  });

  if (config.nats.provision) await provisionQueues(nc, config, config.queues, log);

  const js = jetstream(nc);
  const metrics = createWorkerMetrics();
  const jsm = await jetstreamManager(nc);
  const consumers: QueueConsumer[] = [];
  const handlers: { close(): Promise<void> }[] = [];
  for (const queue of config.queues) {
    const qlog = log.child({ queue });
    const queueHandlers: HandlerMap = {};
    for (const task of tasksOfQueue(queue)) {
      handlers.push(
        await installHandler(queueHandlers, task, { config, log: qlog.child({ task }), metrics }),
      );
    }
    const concurrency = Math.max(...Object.values(queueHandlers).map((h) => h?.concurrency ?? 1));
    const consumer = createQueueConsumer({
      queue: queue as QueueName,
      nc,
      js,
      names,
      store,
      handlers: queueHandlers,
      concurrency,
      ackWaitMs: config.nats.ack_wait_s * 1000,
      maxDeliver: config.nats.max_deliver,
      fetchExpiresMs: config.nats.fetch_expires_ms,
      retryBaseMs: config.nats.retry_base_ms,
      retryMaxMs: config.nats.retry_max_ms,
      signer,
      log: qlog,
      metrics,
    });
    consumers.push(consumer);
    metrics.watch({
      queue,
      size: consumer.slots.size,
      busy: () => consumer.slots.busy,
      lag: async () => (await jsm.consumers.info(names.stream, names.consumerName(queue))).num_pending,
    });
  }

  // An operator's pause applies before the first pull: the watch delivers the current states first.
  const control = await openQueueControl(nc, {
    bucket: names.controlBucket,
    replicas: config.nats.stream_replicas,
    log: log.child({ module: 'queue-control' }),
  });
  const byQueue = new Map(consumers.map((c, i) => [config.queues[i] as string, c]));
  const stopWatching = await control.watch(config.queues, (queue, state) => {
    const consumer = byQueue.get(queue);
    if (state?.paused) consumer?.pause();
    else consumer?.resume();
  });
  for (const consumer of consumers) await consumer.start();
  const heartbeat = startHeartbeat({
    redis,
    names,
    workerId: WORKER_ID,
    intervalMs: config.heartbeat_interval_s * 1000,
    sources: consumers.map((c, i) => ({
      queue: config.queues[i] as QueueName,
      slots: c.slots.size,
      busy: () => c.slots.busy,
      paused: () => c.paused,
    })),
    log: log.child({ module: 'heartbeat' }),
  });
  await heartbeat.beat().catch((err: unknown) => log.warn({ err }, 'heartbeat: first beat failed'));

  const health = startHealthFile(config.health_file, () => consumers.every((c) => c.healthy()));
  const metricsServer =
    config.metrics.port >= 0
      ? await serveWorkerMetrics(metrics, config.metrics, log.child({ module: 'metrics' }))
      : null;
  log.info({ queues: config.queues }, 'worker ready');

  onShutdownSignal(
    async () => {
      clearInterval(health);
      metricsServer?.close();
      stopWatching();
      // Stop pulling first and let in-flight tasks settle: their results need Redis and their acks NATS.
      await Promise.all(consumers.map((c) => c.stop(config.shutdown_grace_s * 1000)));
      await heartbeat.stop();
      await Promise.all(handlers.map((h) => h.close()));
      await nc.drain();
      await closeRedis(redis);
      // Last: the spans of the deliveries that just settled are still buffered.
      await tracing?.shutdown();
      log.info('worker stopped');
    },
    log,
    (config.shutdown_grace_s + 10) * 1000,
  );
}

/** Loads a task's handler into `map`, typed against that task. */
async function installHandler<K extends TaskName>(
  map: HandlerMap,
  task: K,
  deps: HandlerDeps,
): Promise<TaskHandler<K>> {
  const factory = await HANDLER_FACTORIES[task]();
  const handler = await factory(deps);
  // The map seen through this task's key only: that view can take a TaskHandler<K>.
  const slot: { [P in K]?: TaskHandler<P> } = map;
  slot[task] = handler;
  return handler;
}

function startHealthFile(path: string, healthy: () => boolean): NodeJS.Timeout | undefined {
  if (path === '') return undefined;
  const touch = async () => {
    if (!healthy()) return;
    const now = new Date();
    await utimes(path, now, now).catch(() => writeFile(path, ''));
  };
  void touch();
  return setInterval(() => void touch().catch(() => {}), 10_000);
}

main().catch((err: unknown) => {
  process.stderr.write(`worker: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
