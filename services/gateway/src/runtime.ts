// Wires the gateway's dependencies from its config: NATS, Redis (redis-connections.ts), the task
// reader, the long-poll hub, the completion watch, the ledger and its consumer, and the submitter.
// main.ts and the tests both build the gateway through here, so tests run the same wiring against
// the real servers. close() runs in reverse order of creation.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { createNames, type Names } from '@neuroagent/contracts';
import {
  connectNats,
  connectStorage,
  createReplayContext,
  createTaskReader,
  ensureStreams,
  jetstreamManager,
  type Logger,
  loadTaskSigner,
  openQueueControl,
  requestCancel,
} from '@neuroagent/platform';
import type Koa from 'koa';
import { createAdminOps } from './admin/operations.ts';
import { createModelClient } from './agent/model-client.ts';
import { enabledTools } from './agent/settings.ts';
import { createThreadStore } from './agent/thread-store.ts';
import { createAgentTools } from './agent/tool-calls.ts';
import { createTurnControl } from './agent/turn-control.ts';
import { createTurnEventLog } from './agent/turn-events.ts';
import { createTurnRunner } from './agent/turn-runner.ts';
import { createApp } from './app.ts';
import { withVerifiedTokenCache } from './auth/verified-tokens.ts';
import { createVerifier } from './auth/verifier.ts';
import { createCompletionWatch } from './completion-watch.ts';
import type { GatewayConfig } from './config.ts';
import { createIdempotencyKeys } from './idempotency.ts';
import { createAuditLog } from './ledger/audit-log.ts';
import { startLedgerConsumer } from './ledger/events-consumer.ts';
import { type ApplyResult, type LedgerEvent, openLedger } from './ledger/ledger.ts';
import { createSubmissionBatcher } from './ledger/submission-batcher.ts';
import { createMetrics } from './metrics.ts';
import { createProgressHub, type ProgressHub } from './progress-hub.ts';
import { createPubAckMux } from './pub-ack-mux.ts';
import { createRateLimits } from './rate-limit/limiter.ts';
import { openGatewayRedis } from './redis-connections.ts';
import { createTaskSubmitter } from './submission.ts';

export interface GatewayRuntime {
  app: Koa;
  hub: ProgressHub;
  names: Names;
  releaseWaiters(): Promise<void>;
  /** Releases waiters (they answer 202), then drains NATS and closes Redis. */
  close(): Promise<void>;
}

export async function createGatewayRuntime(
  config: Readonly<GatewayConfig>,
  log: Logger,
): Promise<GatewayRuntime> {
  // First: without the key the workers share, every task would be dead-lettered as bad_signature.
  const signer = loadTaskSigner(config.nats, 'NEUROAGENT_');
  const names = createNames({
    stream: config.nats.stream,
    subjectPrefix: config.nats.subject_prefix,
    keyPrefix: config.redis.key_prefix,
    eventsShards: config.redis.events_shards,
  });
  const nc = await connectNats(config.nats, 'gateway', log);
  const jsm = await jetstreamManager(nc);
  if (config.nats.provision) await ensureStreams(jsm, { names, nats: config.nats }, log);
  const conns = openGatewayRedis(config.redis, config.redis.events_shards, log, {
    autoPipelining: config.redis.auto_pipelining,
  });
  const redis = conns.commands;
  const store = createTaskReader(redis, { names, ttlS: config.tasks.ttl_s });
  const hub = createProgressHub({
    blocking: conns.hub,
    commands: redis,
    names,
    blockMs: config.long_poll.block_ms,
    clusterPollMs: config.long_poll.cluster_poll_ms,
    log,
  });
  // Long polls wait on their own connection, tailing tasks:events (see completion-watch.ts).
  const completions = createCompletionWatch({
    blocking: conns.completions,
    names,
    blockMs: config.long_poll.block_ms,
    log: log.child({ module: 'completion-watch' }),
  });
  await completions.start();
  const ledger = await openLedger(config.db, log.child({ module: 'ledger' }));
  const publisher = createPubAckMux(nc);
  const submitter = createTaskSubmitter({
    ledger: { ...createSubmissionBatcher(ledger), applyEvent: ledger.applyEvent },
    publisher,
    names,
    store,
    startWithinS: config.tasks.start_within_s,
    publishTimeoutMs: config.nats.publish_timeout_ms,
    publishRetryMs: config.nats.publish_retry_ms,
    publishAttemptTimeoutMs: config.nats.publish_attempt_timeout_ms,
    signer,
    log,
  });
  const { enabled: storageEnabled, expires_in: _expiresIn, ...storageSettings } = config.storage;
  const storage = storageEnabled
    ? await connectStorage(storageSettings, log.child({ module: 'storage' }))
    : null;
  // A client sends the same token on every request: its signature is checked once per TTL.
  const verifier = withVerifiedTokenCache(await createVerifier(config.auth, log.child({ module: 'auth' })), {
    ttlMs: config.auth.cache_ttl_s * 1000,
    maxEntries: config.auth.cache_max_entries,
  });
  const metrics = createMetrics({ longPollWaiters: () => hub.waiterCount() + completions.waiterCount() });
  // Exactly one gateway replica applies each status change to the ledger (a Redis consumer group),
  // so the ledger is right even when no client waits; the completion counters count there too.
  const countCompletion = (event: LedgerEvent, applied: ApplyResult) => {
    if (applied !== 'ignored' && (event.status === 'succeeded' || event.status === 'failed')) {
      const queue = event.queue ?? 'unknown';
      (event.status === 'succeeded' ? metrics.tasksCompleted : metrics.tasksFailed).inc({ queue });
    }
  };
  // One consumer per shard of tasks:events, each on its own connection (see redis-connections.ts).
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const ledgerConsumers = await Promise.all(
    conns.ledger.map((conn, shard) =>
      startLedgerConsumer({
        redis: conn,
        names,
        shard,
        consumer,
        lingerMs: config.db.events_linger_ms,
        claimIdleMs: config.db.events_claim_idle_s * 1000,
        log,
        dialect: ledger.dialect,
        ledger: {
          async applyEvent(event) {
            const applied = await ledger.applyEvent(event);
            countCompletion(event, applied);
            return applied;
          },
          async applyEvents(events) {
            const applied = await ledger.applyEvents(events);
            for (const [i, event] of events.entries()) countCompletion(event, applied[i] ?? 'ignored');
            return applied;
          },
        },
      }),
    ),
  );
  const limits = createRateLimits(
    { ...config.rate_limit, key_prefix: `${config.redis.key_prefix}${config.rate_limit.key_prefix}` },
    redis,
    log.child({ module: 'rate-limit' }),
    (route) => metrics.rateLimitRejections.inc({ route }),
  );
  const replay = await createReplayContext(
    nc,
    { stream: config.nats.stream, subjectPrefix: config.nats.subject_prefix },
    { signer, publishTimeoutMs: config.nats.publish_timeout_ms },
  );
  const control = await openQueueControl(nc, {
    bucket: names.controlBucket,
    replicas: config.nats.stream_replicas,
    log: log.child({ module: 'queue-control' }),
  });
  const admin = createAdminOps({
    jsm,
    replay,
    control,
    redis,
    names,
    ledger,
    store,
    settings: {
      workerStaleMs: config.admin.worker_stale_s * 1000,
      maxTimelineEvents: config.admin.max_timeline_events,
    },
  });
  const cancel = (taskId: string) => requestCancel(nc, store, names, taskId);
  const agentLog = log.child({ module: 'agent' });
  const threads = createThreadStore(ledger.orm);
  const model = createModelClient(config.llm, {
    maxReplyBytes: config.llm.max_reply_kb * 1024,
    // Ten times the calls that may run: more in one reply is a broken or hostile server.
    maxToolCalls: config.agent.max_parallel_tool_calls * 10,
  });
  const turnEvents = createTurnEventLog({ redis, names, ttlS: config.agent.events_ttl_s, log: agentLog });
  const turnControl = createTurnControl({
    nc,
    redis,
    names,
    flagTtlS: config.agent.turn_timeout_s,
    log: agentLog,
  });
  const runner = createTurnRunner({
    store: threads,
    model,
    tools: createAgentTools(enabledTools(config.agent), {
      submitter,
      completions,
      limits,
      metrics,
      cancel,
      store,
      ledger,
      log: agentLog,
    }),
    events: turnEvents,
    control: turnControl,
    settings: config.agent,
    observe(turn, overheadMs, toolCalls, outcomes) {
      metrics.agentTurns.inc({ status: turn.status });
      for (const o of outcomes) metrics.agentToolCalls.inc({ tool: o.tool, status: o.status });
      if (toolCalls > 0) metrics.agentLoopOverhead.observe(overheadMs / 1000 / toolCalls);
    },
    log: agentLog,
  });
  const app = createApp({
    admin,
    agent: {
      threads,
      runner,
      events: turnEvents,
      control: turnControl,
      model,
      settings: config.agent,
      redis,
      names,
    },
    audit: createAuditLog(ledger.orm),
    config,
    verifier,
    limits,
    metrics,
    ledger,
    store,
    storage,
    hub,
    completions,
    submitter,
    idempotency: createIdempotencyKeys({
      redis,
      keyPrefix: config.redis.key_prefix,
      windowS: config.idempotency.window_s,
      maxKeyLength: config.idempotency.max_key_length,
    }),
    cancel,
    log,
    readiness: {
      nats: () => nc.rtt(),
      redis: () => redis.ping(),
      stream: () => jsm.streams.info(names.stream),
    },
  });
  return {
    app,
    hub,
    /** Answers every long poll (202) and ends every SSE stream; the HTTP server is still open. */
    async releaseWaiters() {
      // Turns first: each cancels its tasks and stores how it ended, then ends its streams.
      await runner.close();
      await Promise.all([hub.close(), completions.close()]);
    },
    names,
    async close() {
      await runner.close();
      await hub.close();
      await completions.close();
      await Promise.all(ledgerConsumers.map((c) => c.stop()));
      await ledger.close();
      publisher.close();
      await nc.drain();
      await conns.close();
      storage?.close();
    },
  };
}
