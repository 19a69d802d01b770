// `npm start` shows the services' JSON log lines as readable text (pino-pretty): one header line
// per record with its time, level and message, then its fields indented. The services themselves
// always log JSON, which is what a log shipper reads; `npm start -- --json` keeps it here too.
import type { Writable } from 'node:stream';
import { prettyFactory } from 'pino-pretty';

/** Turns one output line into the lines to show; anything that is not a pino record passes as is. */
export type LineFormat = (line: string) => string[];

export function prettyLogLines(stream: Writable): LineFormat {
  const hasColors = (stream as Writable & { hasColors?: () => boolean }).hasColors?.() ?? false;
  const pretty = prettyFactory({
    colorize: hasColors,
    translateTime: 'SYS:HH:MM:ss.l',
    // The tag already names the service; pid and hostname are the same on every line.
    ignore: 'pid,hostname,service',
    singleLine: false,
  });
  return (line) => {
    if (!line.startsWith('{')) return [line];
    try {
      const record: unknown = JSON.parse(line);
      if (!record || typeof record !== 'object' || !('level' in record)) return [line];
      return pretty(record).trimEnd().split('\n');
    } catch {
      return [line];
    }
  };
}
