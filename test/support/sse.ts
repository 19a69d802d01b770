// Reading Server-Sent Events from a fetch response, for tests of the SSE routes: frames are split
// on blank lines and each one's id, event and data are kept as sent.

export interface SseFrame {
  id: string;
  event: string;
  data: unknown;
}

/**
 * Yields each frame as it arrives (comment lines such as keep-alives are skipped); ends when the
 * server ends the stream or the response body is cancelled.
 */
export async function* sseFrames(res: Response): AsyncGenerator<SseFrame> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame: SseFrame = { id: '', event: 'message', data: null };
      let data = '';
      let any = false;
      for (const line of raw.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        any = true;
        if (field === 'id') frame.id = value;
        else if (field === 'event') frame.event = value;
        else if (field === 'data') data += data === '' ? value : `\n${value}`;
      }
      if (!any) continue;
      frame.data = data === '' ? null : JSON.parse(data);
      yield frame;
    }
  }
}

/** Every frame until the server ends the stream. */
export async function allFrames(res: Response): Promise<SseFrame[]> {
  const out: SseFrame[] = [];
  for await (const frame of sseFrames(res)) out.push(frame);
  return out;
}

/** Frames up to and including the first one `until` accepts; the rest of the stream is left unread. */
export async function framesUntil(
  frames: AsyncGenerator<SseFrame>,
  until: (frame: SseFrame) => boolean,
): Promise<SseFrame[]> {
  const out: SseFrame[] = [];
  // next() by hand: a for-await that stops early would close the generator, and the caller may
  // still want what follows.
  for (let step = await frames.next(); !step.done; step = await frames.next()) {
    out.push(step.value);
    if (until(step.value)) return out;
  }
  throw new Error(`the stream ended before the awaited event; got: ${out.map((f) => f.event).join(', ')}`);
}

/** The event names with runs of text deltas shown once, for order assertions. */
export function eventOrder(frames: SseFrame[]): string[] {
  return frames.map((f) => f.event).filter((e, i, all) => !(e === 'text' && all[i - 1] === 'text'));
}

/** The text deltas of a turn's frames, joined. */
export function textOf(frames: SseFrame[]): string {
  return frames
    .filter((f) => f.event === 'text')
    .map((f) => (f.data as { delta: string }).delta)
    .join('');
}
