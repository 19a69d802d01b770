// Two-stage signal handling: the first SIGTERM/SIGINT starts a graceful stop under an
// unref'd deadline; a second signal, or the deadline, forces exit. Only main.ts calls this.
import type { Logger } from './logger.ts';

export function onShutdownSignal(
  stop: (signal: string) => Promise<void>,
  log: Logger,
  graceMs: number,
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: forcing exit');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal, graceMs }, 'shutting down');
    setTimeout(() => {
      log.error({ graceMs }, 'graceful shutdown timed out: forcing exit');
      process.exit(1);
    }, graceMs).unref();
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
