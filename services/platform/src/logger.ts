// One pino root per process; modules take `log.child({ module })`. JSON lines on stdout.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(service: string, level: string = 'info'): Logger {
  return pino({ level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}
