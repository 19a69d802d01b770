// The cluster primary of NEUROAGENT_HTTP__WORKERS > 1: it serves nothing and holds no connection;
// it forks the gateway workers (they share the listening socket through node:cluster), restarts one
// that dies, and on SIGTERM/SIGINT stops them all before it exits. The workers run main.ts's
// ordinary single-process path.
import cluster, { type Worker } from 'node:cluster';
import { type Logger, onShutdownSignal } from '@neuroagent/platform';

/**
 * Sent to each worker on shutdown instead of a signal: when a terminal's Ctrl-C or a supervisor
 * signals the whole process group, a forwarded signal would be each worker's second one, which
 * forces its exit; the message only starts a stop that has not started yet (main.ts).
 */
export const SHUTDOWN_MESSAGE = 'neuroagent:shutdown';

/** A worker's exit code that means "fix the configuration": restarting it would fail the same way. */
const CONFIG_EXIT_CODE = 78;
// The workers' own deadline is the shutdown grace; the primary waits a little longer for them.
const STOP_MARGIN_MS = 5000;

export interface ClusterPrimaryOptions {
  workers: number;
  log: Logger;
  /** The workers' shutdown grace (NEUROAGENT_HTTP__SHUTDOWN_GRACE_S). */
  shutdownGraceMs: number;
  /** Pause before a dead worker is replaced. */
  restartDelayMs?: number;
  /** At most `workers` restarts within this window; one more and the primary gives up (exit 1). */
  restartWindowMs?: number;
}

export function runClusterPrimary(opts: ClusterPrimaryOptions): void {
  const { workers, log } = opts;
  const restartDelayMs = opts.restartDelayMs ?? 1000;
  const restartWindowMs = opts.restartWindowMs ?? 60_000;
  const live = new Set<Worker>();
  const restarts: number[] = [];
  let stopping = false;
  let failed = false; // a worker did not stop cleanly
  let giveUpCode: number | null = null;
  let drained: (() => void) | null = null;
  let allStopped: Promise<void> | null = null;

  const fork = () => {
    const worker = cluster.fork();
    live.add(worker);
    log.info({ worker: worker.id, workerPid: worker.process.pid }, 'gateway worker forked');
  };

  // Resolves once every worker has exited; `failed` then says whether all of them stopped cleanly.
  // Once only: a signal during a give-up waits for the same stop.
  const stopWorkers = (): Promise<void> => {
    if (allStopped) return allStopped;
    stopping = true;
    allStopped = new Promise<void>((resolve) => {
      drained = resolve;
    });
    for (const worker of live) {
      worker.send(SHUTDOWN_MESSAGE, (err: Error | null) => {
        // The channel is already gone (the worker is dying): a signal still reaches it.
        if (err) worker.process.kill('SIGTERM');
      });
    }
    if (live.size === 0) drained?.();
    return allStopped;
  };

  // A failure no restart can fix: stop the other workers, then exit with `code`.
  const giveUp = (code: number) => {
    if (stopping) return;
    giveUpCode = code;
    setTimeout(() => {
      log.error('gateway workers did not stop in time: forcing exit');
      process.exit(code);
    }, opts.shutdownGraceMs + STOP_MARGIN_MS).unref();
    void stopWorkers().then(() => process.exit(code));
  };

  cluster.on('exit', (worker, code, signal) => {
    live.delete(worker);
    const fields = { worker: worker.id, workerPid: worker.process.pid, code, signal };
    if (stopping) {
      // A worker still booting has no handler yet and ends by the signal itself (the primary's
      // SIGTERM, or the terminal's SIGINT to the whole process group).
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGINT') failed = true;
      log.info(fields, 'gateway worker exited');
      if (live.size === 0) drained?.();
      return;
    }
    if (code === CONFIG_EXIT_CODE) {
      log.error(fields, 'gateway worker rejected its configuration: stopping');
      giveUp(CONFIG_EXIT_CODE);
      return;
    }
    const now = Date.now();
    while (restarts.length > 0 && now - (restarts[0] as number) >= restartWindowMs) restarts.shift();
    if (restarts.length >= workers) {
      log.error(
        { ...fields, restarts: restarts.length, windowS: restartWindowMs / 1000 },
        'gateway workers keep dying: giving up',
      );
      giveUp(1);
      return;
    }
    restarts.push(now);
    log.warn({ ...fields, restartInMs: restartDelayMs }, 'gateway worker died: restarting');
    setTimeout(() => {
      if (!stopping) fork();
    }, restartDelayMs);
  });

  log.info({ workers }, 'gateway cluster primary started');
  for (let i = 0; i < workers; i++) fork();

  onShutdownSignal(
    async () => {
      await stopWorkers();
      if (giveUpCode !== null) process.exit(giveUpCode);
      if (failed) throw new Error('a gateway worker did not stop cleanly');
      log.info('gateway cluster stopped');
    },
    log,
    opts.shutdownGraceMs + STOP_MARGIN_MS,
  );
}
