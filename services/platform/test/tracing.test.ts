// tracing.ts: when tracing is on (an OTLP endpoint) and when it is off (none: no SDK at all), the
// W3C trace context on message headers with hostile values, error codes on spans, and trace ids on
// log lines. The SDK is started once, in this process, against a real OTLP receiver; the tests
// of the off state run before it.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { AppError, ConfigError } from '../src/errors.ts';
import { createLogger } from '../src/logger.ts';
import { startOtlpReceiver } from '../src/testing-otlp.ts';
import {
  extractTraceContext,
  injectTraceHeaders,
  MAX_TRACEPARENT_LENGTH,
  startTracing,
  type Tracing,
  tracesEndpoint,
  tracingEnabled,
  withSpan,
} from '../src/tracing.ts';

const silent = createLogger('test', 'silent');
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

function headers(values: Record<string, string>) {
  const set = new Map(Object.entries(values));
  return {
    get: (name: string) => set.get(name) ?? '',
    set: (name: string, value: string) => void set.set(name, value),
    values: set,
  };
}

/** The remote parent a context carries, or undefined. */
function parentOf(ctx: ReturnType<typeof extractTraceContext>) {
  return trace.getSpanContext(ctx);
}

/** The platform logger, writing its JSON lines to an array. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { log: createLogger('test', 'info', stream), lines };
}

describe('tracesEndpoint', () => {
  it('is null (tracing off) without an endpoint, when disabled, or with the none exporter', () => {
    assert.equal(tracesEndpoint({}), null);
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }), null);
    assert.equal(
      tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }),
      null,
    );
    assert.equal(
      tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }),
      null,
    );
  });

  it('appends /v1/traces to the base endpoint; the traces endpoint is taken as it is', () => {
    assert.equal(
      tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }),
      'http://c:4318/v1/traces',
    );
    assert.equal(
      tracesEndpoint({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t:443/x',
      }),
      'https://t:443/x',
    );
  });

  it('refuses an endpoint that is not an http(s) URL, naming the variable', () => {
    assert.throws(
      () => tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'otel-collector:4318' }),
      (err: unknown) => err instanceof ConfigError && /OTEL_EXPORTER_OTLP_ENDPOINT/.test(err.message),
    );
    assert.throws(
      () => tracesEndpoint({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://x/v1/traces' }),
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT/,
    );
  });
});

describe('with no OTLP endpoint', () => {
  it('starts no SDK: the global tracer stays the no-op and the helpers do nothing', async () => {
    assert.equal(await startTracing({}, { serviceName: 'test', log: silent }), null);
    assert.equal(tracingEnabled(), false);
    const probe = trace.getTracer('probe').startSpan('probe');
    assert.equal(probe.isRecording(), false);
    assert.equal(probe.spanContext().traceId, '0'.repeat(32), 'a no-op span, from no provider');
    let seen: unknown = 'not called';
    assert.equal(
      await withSpan('x', {}, async (span) => {
        seen = span;
        return 7;
      }),
      7,
    );
    assert.equal(seen, undefined);
    const h = headers({});
    injectTraceHeaders(h);
    assert.equal(h.values.size, 0, 'no traceparent is written');
    assert.equal(parentOf(extractTraceContext(headers({ traceparent: VALID }))), undefined);
  });

  it('adds nothing to log lines', () => {
    const { log, lines } = capturingLogger();
    log.info({ a: 1 }, 'line');
    assert.deepEqual(Object.keys(lines[0] ?? {}).sort(), ['a', 'level', 'msg', 'service', 'time']);
  });
});

describe('with an OTLP endpoint', () => {
  let tracing: Tracing | null = null;
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  after(async () => {
    await tracing?.shutdown();
    await receiver?.close();
  });

  it('starts the SDK and exports spans over OTLP/HTTP', async () => {
    receiver = await startOtlpReceiver();
    // The SDK reads these itself, from process.env.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
    process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
    tracing = await startTracing(process.env, { serviceName: 'unit', log: silent });
    assert.ok(tracing);
    assert.equal(tracing.endpoint, `${receiver.url}/v1/traces`);
    assert.equal(tracingEnabled(), true);
    await withSpan('unit span', {}, async (span) => span?.setAttribute('k', 'v'));
    const spans = await receiver.waitFor((s) => s.some((x) => x.name === 'unit span'), 10_000, 'the span');
    const span = spans.find((x) => x.name === 'unit span');
    assert.equal(span?.service, 'unit');
    assert.equal(span?.attributes.k, 'v');
    assert.deepEqual(receiver.rejected, []);
  });

  it('records an error by its code, never its message', async () => {
    const secret = 'SELECT secret_column FROM users';
    await assert.rejects(
      withSpan('failing span', {}, async () => {
        throw new AppError('invalid_sql', `DuckDB rejected ${secret}`);
      }),
      /DuckDB rejected/,
    );
    await assert.rejects(
      withSpan('plain failure', {}, async () => {
        throw new TypeError(secret);
      }),
    );
    const spans = await receiver.waitFor(
      (s) => s.some((x) => x.name === 'failing span') && s.some((x) => x.name === 'plain failure'),
      10_000,
      'the failed spans',
    );
    const failing = spans.find((x) => x.name === 'failing span');
    assert.deepEqual(failing?.status, { code: 2, message: 'invalid_sql' });
    assert.equal(failing?.attributes['error.type'], 'invalid_sql');
    assert.equal(spans.find((x) => x.name === 'plain failure')?.attributes['error.type'], 'TypeError');
    assert.ok(!JSON.stringify(spans).includes('secret_column'));
  });

  it('carries the active span in traceparent, and continues it from there', async () => {
    const h = headers({});
    let sent = '';
    await withSpan('producer', {}, async (span) => {
      injectTraceHeaders(h);
      sent = span?.spanContext().spanId ?? '';
    });
    assert.match(h.get('traceparent'), new RegExp(`^00-[0-9a-f]{32}-${sent}-01$`));
    const parent = parentOf(extractTraceContext(h));
    assert.equal(parent?.spanId, sent);
    assert.equal(parent?.isRemote, true);
    const given = parentOf(extractTraceContext(headers({ traceparent: VALID, tracestate: 'vendor=v1' })));
    assert.deepEqual(
      [given?.traceId, given?.spanId, given?.traceState?.get('vendor')],
      [TRACE_ID, SPAN_ID, 'v1'],
    );
  });

  it('ignores a hostile traceparent or tracestate without throwing', () => {
    const hostile: [string, string][] = [
      ['garbage', 'not a traceparent at all'],
      ['empty parts', '00---01'],
      ['version ff (forbidden)', `ff-${TRACE_ID}-${SPAN_ID}-01`],
      ['version 00 with extra fields', `${VALID}-extra`],
      ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`],
      ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
      ['all-zero span id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
      // A later version may append fields, so only the length cap stops this one.
      ['too long', `01-${TRACE_ID}-${SPAN_ID}-01-${'x'.repeat(MAX_TRACEPARENT_LENGTH)}`],
      ['control characters', `00-${TRACE_ID}-${SPAN_ID}-01\u0000\r\n`],
    ];
    for (const [what, value] of hostile) {
      assert.equal(parentOf(extractTraceContext(headers({ traceparent: value }))), undefined, what);
    }
    // A future version within the cap is accepted, as the W3C spec asks.
    assert.equal(
      parentOf(extractTraceContext(headers({ traceparent: `01-${TRACE_ID}-${SPAN_ID}-01-x` })))?.spanId,
      SPAN_ID,
    );
    // An oversized tracestate is dropped; the traceparent still counts.
    const big = parentOf(
      extractTraceContext(headers({ traceparent: VALID, tracestate: `a=${'b'.repeat(5000)}` })),
    );
    assert.equal(big?.spanId, SPAN_ID);
    assert.equal(big?.traceState, undefined);
    // Headers that throw when read.
    const throwing = {
      get(): string {
        throw new Error('boom');
      },
    };
    assert.equal(parentOf(extractTraceContext(throwing)), undefined);
  });

  it('puts trace_id and span_id on the log lines written inside a span, only there', async () => {
    const { log, lines } = capturingLogger();
    let ids = { traceId: '', spanId: '' };
    await withSpan('logging span', {}, async (span) => {
      ids = span?.spanContext() ?? ids;
      log.info({ taskId: 't1' }, 'inside');
    });
    log.info('outside');
    assert.equal(lines[0]?.trace_id, ids.traceId);
    assert.equal(lines[0]?.span_id, ids.spanId);
    assert.equal(lines[0]?.taskId, 't1');
    assert.equal(lines[1]?.trace_id, undefined);
  });
});
