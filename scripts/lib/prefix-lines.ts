// Tags each line of a child process's output with its name (`[gateway] …`), so the interleaved
// logs of every process `npm start` runs stay readable. Imports node: builtins only.
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { styleText } from 'node:util';

export type TagColour = 'cyan' | 'magenta' | 'green' | 'red' | 'yellow' | 'blue';

/**
 * `[name]`, coloured only when `stream` can show colours (a TTY, and neither NO_COLOR nor
 * TERM=dumb set), so that logs redirected to a file or a pipe stay plain text.
 */
export function formatTag(name: string, colour: TagColour, stream: Writable): string {
  return styleText(colour, `[${name}]`, { stream });
}

/**
 * Writes every line of `input` to `output` behind `tag`, through `format` when given (one input
 * line may become several, each tagged). Resolves when `input` ends; a last line without a newline
 * is still written then.
 */
export function prefixLines(
  input: Readable,
  tag: string,
  output: Writable,
  format?: (line: string) => string[],
): Promise<void> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  lines.on('line', (line) => {
    for (const shown of format ? format(line) : [line]) output.write(`${tag} ${shown}\n`);
  });
  return new Promise((resolve) => lines.once('close', resolve));
}
