// A Server-Sent Events parser (the WHATWG event-stream format) over text chunks. EventSource cannot
// send an Authorization header, so the dashboard reads the stream with fetch() and parses it here.
// Pure: no DOM and no Node, so a Node test checks it and the browser bundles it.

export interface SseFrame {
  /** The `id:` of this frame, or the last one seen before it ('' when none). */
  id: string;
  /** `event:`, 'message' when absent. */
  event: string;
  /** Every `data:` line, joined with \n. */
  data: string;
}

export interface SseParser {
  /** Feeds a chunk of text; calls onFrame for every frame it completes. */
  push(chunk: string): void;
  /** The stream has ended: a line end held back (a final \r) counts now. */
  end(): void;
  /** The last `retry:` value in ms, or null. */
  retryMs(): number | null;
}

export function createSseParser(onFrame: (frame: SseFrame) => void): SseParser {
  let buffer = '';
  let lastId = '';
  let retry: number | null = null;
  let event = '';
  let data: string[] = [];
  let hasData = false;

  function line(text: string): void {
    if (text === '') {
      // A blank line dispatches; a frame without data (only comments or an id) dispatches nothing.
      if (hasData) onFrame({ id: lastId, event: event || 'message', data: data.join('\n') });
      event = '';
      data = [];
      hasData = false;
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      data.push(value);
      hasData = true;
    } else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }

  return {
    push(chunk) {
      buffer += chunk;
      // Lines end with \n, \r\n or \r; a trailing \r may be the first half of \r\n, so it waits.
      for (;;) {
        const m = /\r\n|\n|\r(?!$)/.exec(buffer);
        if (!m) break;
        line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
      }
    },
    end() {
      if (buffer.endsWith('\r')) {
        line(buffer.slice(0, -1));
        buffer = '';
      }
    },
    retryMs: () => retry,
  };
}
