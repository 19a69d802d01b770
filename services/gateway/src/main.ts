// Gateway process entry: the only place that reads process.env, listens and exits. On SIGTERM:
// stop accepting connections, release long-poll waiters (they answer 202 with the task id), then
// close NATS and Redis. With NEUROAGENT_HTTP__WORKERS > 1 this process becomes the cluster primary
// (cluster-primary.ts) and each forked worker runs the single-process path below.
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import {
  ConfigError,
  createLogger,
  type Logger,
  onShutdownSignal,
  SigningKeyError,
  startTracing,
  type Tracing,
} from '@neuroagent/platform';
import { assertSafeWhenDisabled } from './auth/verifier.ts';
import { runClusterPrimary, SHUTDOWN_MESSAGE } from './cluster-primary.ts';
import { type GatewayConfig, loadGatewayConfig } from './config.ts';
import { openLedger } from './ledger/ledger.ts';
import { createGatewayRuntime } from './runtime.ts';

async function main(): Promise<void> {
  let config: Readonly<GatewayConfig>;
  try {
    config = loadGatewayConfig(process.env);
  } catch (err) {
    process.stderr.write(`gateway: ${(err as ConfigError).message}\n`);
    process.exit(78);
  }
  // With several processes on one stdout, each line says which one it came from.
  const log = createLogger('gateway', config.log.level, undefined, {
    batchWrites: config.log.batch_writes,
  }).child({ pid: process.pid });
  if (config.http.workers > 1 && cluster.isPrimary) await startPrimary(config, log);
  else await serve(config, log);
}

async function startPrimary(config: Readonly<GatewayConfig>, log: Logger): Promise<void> {
  try {
    // Checked here too, so a gateway that may not start fails once instead of in every worker.
    assertSafeWhenDisabled(config.auth, config.http.host);
  } catch (err) {
    process.stderr.write(`gateway: ${(err as Error).message}\n`);
    process.exit(78);
  }
  // Migrate once before forking: N workers migrating the same database at the same moment would
  // race on the migrations table (and SQLite on its write lock).
  const ledger = await openLedger(config.db, log);
  await ledger.close();
  runClusterPrimary({
    workers: config.http.workers,
    log,
    shutdownGraceMs: config.http.shutdown_grace_s * 1000,
  });
}

async function serve(config: Readonly<GatewayConfig>, log: Logger): Promise<void> {
  let stopping = false;
  if (cluster.isWorker) {
    // The primary asks for a stop by message (see SHUTDOWN_MESSAGE); the signal handler does it, and
    // a worker the same signal already reached ignores the message. Before the handler exists
    // (still booting) the signal just ends the process: there is nothing to drain yet.
    process.on('message', (message: unknown) => {
      if (message === SHUTDOWN_MESSAGE && !stopping) process.kill(process.pid, 'SIGTERM');
    });
  }
  let runtime: Awaited<ReturnType<typeof createGatewayRuntime>>;
  let tracing: Tracing | null;
  try {
    // Before anything connects, so the first requests are traced (off unless an OTLP endpoint is set).
    tracing = await startTracing(process.env, { serviceName: 'gateway', log });
    // Auth off is only for a gateway nobody else can reach.
    assertSafeWhenDisabled(config.auth, config.http.host);
    if (config.auth.disabled)
      log.warn('NEUROAGENT_AUTH__DISABLED=true: every request is served as the anonymous user');
    runtime = await createGatewayRuntime(config, log);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof SigningKeyError) {
      process.stderr.write(`gateway: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }

  const server = createServer(runtime.app.callback());
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
      stopping = true;
      // Order matters: stop accepting, release waiters so their requests answer 202 (they still need
      // Redis for that), wait for every response to be written, and only then close the connections.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await runtime.releaseWaiters();
      await closed;
      await runtime.close();
      // Last: the spans of the requests that just ended are still buffered.
      await tracing?.shutdown();
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
