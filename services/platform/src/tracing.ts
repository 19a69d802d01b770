// Tracing (docs/operations.md, "Tracing"): OpenTelemetry spans made by hand with the API, exported
// over OTLP by the Node SDK. The SDK is loaded and started only when an OTLP endpoint is set; with
// none, every helper here returns at its first line (a null check), nothing is loaded beyond the
// API, and no span, attribute or header is ever built. Trace context crosses NATS in the
// `traceparent`/`tracestate` headers. Whatever arrives there is attacker-written: it is
// length-capped, parsed by the W3C propagator and dropped when invalid, and never becomes an
// attribute. Never imports the gateway or the worker.

import { HEADERS } from '@neuroagent/contracts';
import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import { AppError, ConfigError } from './errors.ts';

export type { Attributes, Context as TraceContext, Link, Span };
export { ROOT_CONTEXT, SpanKind };

/** Attribute names: the semantic conventions' where they exist, `neuroagent.*` for ours. */
export const ATTR = {
  httpMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpStatus: 'http.response.status_code',
  urlScheme: 'url.scheme',
  errorType: 'error.type',
  dbSystem: 'db.system.name',
  dbOperation: 'db.operation.name',
  dbCollection: 'db.collection.name',
  dbBatchSize: 'db.operation.batch.size',
  dbReturnedRows: 'db.response.returned_rows',
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestination: 'messaging.destination.name',
  messagingDestinationTemplate: 'messaging.destination.template',
  messagingConsumerGroup: 'messaging.consumer.group.name',
  messagingMessageId: 'messaging.message.id',
  messagingBodySize: 'messaging.message.body.size',
  genAiOperation: 'gen_ai.operation.name',
  genAiProvider: 'gen_ai.provider.name',
  genAiRequestModel: 'gen_ai.request.model',
  genAiInputTokens: 'gen_ai.usage.input_tokens',
  genAiOutputTokens: 'gen_ai.usage.output_tokens',
  taskId: 'neuroagent.task.id',
  taskName: 'neuroagent.task.name',
  taskQueue: 'neuroagent.task.queue',
  taskAttempt: 'neuroagent.task.attempt',
  taskOutcome: 'neuroagent.task.outcome',
  jetstreamSeq: 'neuroagent.jetstream.seq',
} as const;

const TRACER_NAME = 'neuroagent-mesh';
// W3C: a version-00 traceparent is 55 characters; later versions may append fields, and a
// tracestate past 512 characters may be dropped whole. Longer values are ignored before parsing.
export const MAX_TRACEPARENT_LENGTH = 256;
export const MAX_TRACESTATE_LENGTH = 512;

let tracer: Tracer | null = null;
let w3c: TextMapPropagator | null = null;

/** True once startTracing() has started the SDK; every helper below is a no-op until then. */
export function tracingEnabled(): boolean {
  return tracer !== null;
}

// ------------------------------------------------------------------ starting and stopping

export interface Tracing {
  /** The URL spans are exported to. */
  readonly endpoint: string;
  /** Exports the spans still buffered, then stops the SDK. Never throws. */
  shutdown(): Promise<void>;
}

/**
 * Where spans would be exported, from the standard variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
 * as it is, else OTEL_EXPORTER_OTLP_ENDPOINT plus `/v1/traces`; null (tracing off) when neither is
 * set, or OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none. A value that is not an http(s)
 * URL is a ConfigError, so a typo fails at boot instead of exporting nowhere.
 */
export function tracesEndpoint(env: Readonly<Record<string, string | undefined>>): string | null {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return null;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((e) => e.trim());
  if (exporters.includes('none')) return null;
  const own = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() ?? '';
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() ?? '';
  const variable = own !== '' ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  if (own === '' && base === '') return null;
  const endpoint = own !== '' ? own : `${base.replace(/\/+$/, '')}/v1/traces`;
  let url: URL | null = null;
  try {
    url = new URL(endpoint);
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    const message = `${variable} must be an http(s) URL (got ${JSON.stringify(own || base)})`;
    throw new ConfigError(message, [{ path: `/${variable}`, message }]);
  }
  return endpoint;
}

export interface TracingOptions {
  /** service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one. */
  serviceName: string;
  log: Logger;
}

/**
 * Starts the Node SDK when tracesEndpoint(env) is not null, else returns null and loads nothing.
 * `env` MUST be process.env: the SDK reads the OTEL_* variables (protocol, sampler, batch delays,
 * resource attributes) from there itself. Metrics and logs stay off; only traces are exported.
 */
export async function startTracing(
  env: Readonly<Record<string, string | undefined>>,
  opts: TracingOptions,
): Promise<Tracing | null> {
  const endpoint = tracesEndpoint(env);
  if (endpoint === null) return null;
  if (tracer !== null) throw new Error('startTracing() was called twice');
  const [{ startNodeSdk }, { W3CTraceContextPropagator }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/core'),
  ]);
  const named =
    (env.OTEL_SERVICE_NAME?.trim() ?? '') !== '' ||
    /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = startNodeSdk({
    // The SDK's own diagnostics go to the console (stderr for warnings): keep them to problems.
    logLevel: env.OTEL_LOG_LEVEL?.trim() || 'warn',
    metricReaders: [],
    logRecordProcessors: [],
    ...(named ? {} : { resourceAttributes: { 'service.name': opts.serviceName } }),
  });
  const candidate = trace.getTracer(TRACER_NAME);
  // startNodeSdk() returns a no-op when it could not build the SDK (it says why on the console): a
  // span from a no-op tracer has the invalid all-zero context. The probe is never ended or exported.
  if (!isSpanContextValid(candidate.startSpan('probe', { root: true }).spanContext())) {
    opts.log.error({ endpoint }, 'tracing: the OpenTelemetry SDK did not start; spans are off');
    await sdk.shutdown().catch(() => {});
    return null;
  }
  tracer = candidate;
  w3c = new W3CTraceContextPropagator();
  opts.log.info({ endpoint }, 'tracing on: exporting spans over OTLP');
  return {
    endpoint,
    async shutdown() {
      // Spans that end from now on are dropped; the buffered ones are exported first.
      tracer = null;
      w3c = null;
      await sdk
        .shutdown()
        .catch((err: unknown) => opts.log.warn({ code: errorCode(err) }, 'tracing: flushing spans failed'));
    },
  };
}

// ------------------------------------------------------------------ spans

export interface SpanOptions {
  kind?: SpanKind;
  /** Constant attributes; per-call values are set on the span inside `fn` (span?.setAttribute). */
  attributes?: Attributes;
  links?: Link[];
  /** The parent; the active context when absent. */
  parent?: Context;
}

/**
 * Runs `fn` inside a new active span, ended when `fn` settles; a throw sets the span's status to
 * ERROR with the error's code (never its message, which may quote the user's input). With tracing
 * off `fn` runs at once with `undefined`: set per-call attributes with `span?.…` so that nothing is
 * built then.
 */
export function withSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (tracer === null) return fn(undefined);
  const parent = options.parent ?? context.active();
  const span = tracer.startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes, links: options.links },
    parent,
  );
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await fn(span);
    } catch (err) {
      markError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Starts a span the caller ends itself (a batch that outlives the call); undefined when off. */
export function startSpan(name: string, options: SpanOptions): Span | undefined {
  if (tracer === null) return undefined;
  return tracer.startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes, links: options.links },
    options.parent ?? context.active(),
  );
}

/** A context whose only content is `span`: the explicit parent of work done for it later. */
export function contextWithSpan(span: Span): Context {
  return trace.setSpan(ROOT_CONTEXT, span);
}

/** The active span, when tracing is on and one is active. */
export function activeSpan(): Span | undefined {
  return tracer === null ? undefined : trace.getSpan(context.active());
}

/** Status ERROR and `error.type`, both the error's code: never its message or stack. */
export function markError(span: Span | undefined, err: unknown): void {
  if (span === undefined) return;
  const code = errorCode(err);
  span.setAttribute(ATTR.errorType, code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}

/** Marks a failure known by its code alone (an HTTP error body, a dead-letter reason). */
export function markErrorCode(span: Span | undefined, code: string): void {
  if (span === undefined) return;
  span.setAttribute(ATTR.errorType, code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}

const CODE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A short, bounded name for an error: its AppError code, a system code (ECONNREFUSED), or its class. */
export function errorCode(err: unknown): string {
  if (err instanceof AppError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CODE_RE.test(code)) return code;
  if (err instanceof Error) return CODE_RE.test(err.name) ? err.name : 'Error';
  return 'unknown';
}

// ------------------------------------------------------------------ propagation over NATS headers

/** The part of a NATS MsgHdrs the propagation reads and writes (`get` answers '' when absent). */
export interface HeaderCarrier {
  get(name: string): string;
  set(name: string, value: string): void;
}

const GETTER: TextMapGetter<{ traceparent: string; tracestate: string }> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (carrier, key) =>
    key === 'traceparent' ? carrier.traceparent : key === 'tracestate' ? carrier.tracestate : undefined,
};

const SETTER: TextMapSetter<Pick<HeaderCarrier, 'set'>> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** Adds `traceparent` (and `tracestate`) for the active span; nothing when tracing is off. */
export function injectTraceHeaders(headers: Pick<HeaderCarrier, 'set'>, ctx?: Context): void {
  if (w3c === null) return;
  w3c.inject(ctx ?? context.active(), headers, SETTER);
}

/**
 * The trace context a message's headers carry, on top of `base` (the root context by default), or
 * `base` itself when they carry none that is valid: absent, too long, malformed, an unknown or
 * forbidden version (ff), an all-zero id. Never throws.
 */
export function extractTraceContext(
  headers: Pick<HeaderCarrier, 'get'> | undefined,
  base: Context = ROOT_CONTEXT,
): Context {
  if (w3c === null || headers === undefined) return base;
  try {
    const traceparent = headers.get(HEADERS.traceparent);
    if (typeof traceparent !== 'string' || traceparent === '' || traceparent.length > MAX_TRACEPARENT_LENGTH)
      return base;
    const state = headers.get(HEADERS.tracestate);
    const tracestate = typeof state === 'string' && state.length <= MAX_TRACESTATE_LENGTH ? state : '';
    return w3c.extract(base, { traceparent, tracestate }, GETTER);
  } catch {
    return base;
  }
}

// ------------------------------------------------------------------ logs

/** What a log line carries: the active span's ids, or nothing. Read by the logger's mixin. */
export function activeTraceIds(): { trace_id: string; span_id: string } | null {
  if (tracer === null) return null;
  const span = trace.getSpan(context.active());
  if (span === undefined) return null;
  const sc = span.spanContext();
  return isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : null;
}
