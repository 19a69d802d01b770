// The dashboard's SSE parser (it reads the task event streams with fetch(), not EventSource), fed
// the gateway's own frame format in awkward chunks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSseParser, type SseFrame } from '../src/sse-parser.ts';

function parseAll(chunks: string[]): { frames: SseFrame[]; retry: number | null } {
  const frames: SseFrame[] = [];
  const parser = createSseParser((f) => frames.push(f));
  for (const c of chunks) parser.push(c);
  parser.end();
  return { frames, retry: parser.retryMs() };
}

const STREAM =
  ': keep-alive\n\n' +
  'id: 1733-0\nevent: started\ndata: {"ts":"t1","data":{"attempt":1}}\n\n' +
  'id: 1733-1\nevent: progress\ndata: {"ts":"t2","data":{"pct":50}}\n\n' +
  'id: 1733-2\nevent: done\ndata: {"ts":"t3","data":null}\n\n';

describe('createSseParser(onFrame)', () => {
  it('parses the gateway frames, ignoring comments', () => {
    const { frames } = parseAll([STREAM]);
    assert.deepEqual(
      frames.map((f) => [f.id, f.event, JSON.parse(f.data).ts]),
      [
        ['1733-0', 'started', 't1'],
        ['1733-1', 'progress', 't2'],
        ['1733-2', 'done', 't3'],
      ],
    );
  });

  it('gives the same frames whatever the chunking, one character at a time included', () => {
    const whole = parseAll([STREAM]).frames;
    assert.deepEqual(parseAll([...STREAM]).frames, whole);
    assert.deepEqual(parseAll([STREAM.slice(0, 37), STREAM.slice(37, 90), STREAM.slice(90)]).frames, whole);
  });

  it('accepts CRLF and CR line ends, even when a CRLF is split across chunks', () => {
    const crlf = STREAM.replaceAll('\n', '\r\n');
    const whole = parseAll([STREAM]).frames;
    assert.deepEqual(parseAll([crlf]).frames, whole);
    assert.deepEqual(parseAll([...crlf]).frames, whole);
    assert.deepEqual(parseAll([STREAM.replaceAll('\n', '\r')]).frames, whole);
  });

  it('joins multi-line data, defaults the event to message, keeps the last id and reads retry', () => {
    const { frames, retry } = parseAll(['retry: 2500\nid: 7\ndata: a\ndata:b\n\ndata: c\n\nid\ndata: d\n\n']);
    assert.deepEqual(frames, [
      { id: '7', event: 'message', data: 'a\nb' },
      { id: '7', event: 'message', data: 'c' },
      { id: '', event: 'message', data: 'd' },
    ]);
    assert.equal(retry, 2500);
  });

  it('dispatches nothing for a frame without data, or an unfinished one', () => {
    assert.deepEqual(parseAll(['id: 9\nevent: x\n\n', 'data: half']).frames, []);
  });
});
