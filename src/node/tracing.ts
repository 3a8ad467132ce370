/**
 * The node's traces (OpenTelemetry), for every component to use; the design
 * is docs/internals/tracing.md.
 *
 * Off by default, and then free: every helper here only runs its body until
 * `startTracing`, run when the agent is given `--otlp-endpoint`, loads the
 * OpenTelemetry API, the SDK and the OTLP/HTTP exporter (dynamic imports)
 * and registers them. A node without the flag never loads any of them.
 *
 * Context travels two ways. Inside a process, through the active context
 * (AsyncLocalStorage once tracing is on): a span started in `inSpan` is the
 * parent of every span started in its callback, awaits included. Between
 * nodes and through the Raft log, as a W3C `traceparent`
 * (`00-<trace id>-<span id>-<flags>`): an HTTP header on forwarded API
 * requests, gRPC metadata on member submits, and a field of the Raft
 * envelope beside the command (src/node/replicated-state.ts), so that every
 * node's apply and the executor's starts join the trace of the change.
 *
 * Nothing here throws at a caller: a malformed `traceparent` from a peer or a
 * client is ignored (a new trace starts), and a failing exporter only logs.
 */
import { createHash } from 'node:crypto';
import { assert } from '../../consensus/core/assert.js';
import type * as OpenTelemetry from '@opentelemetry/api';
import type { Timers } from '../../consensus/timers.js';

export type Attributes = OpenTelemetry.Attributes;
export type Context = OpenTelemetry.Context;
export type Link = OpenTelemetry.Link;
export type Span = OpenTelemetry.Span;

/** The kinds of span (OpenTelemetry's `SpanKind` values), usable while the API is not loaded. */
export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2 } as const;
export type SpanKind = (typeof SpanKind)[keyof typeof SpanKind];

/** The instrumentation scope's name, and the `service.name` of every node's spans. */
export const SERVICE_NAME = 'hivemind';
/** The W3C header, metadata key and envelope field that carry a span context between nodes. */
export const TRACEPARENT_KEY = 'traceparent';
/** Longest `traceparent` taken from outside; version 00 is 55 characters, later versions may add fields. */
const TRACEPARENT_CHARS_MAX = 256;
/** Spans queued for export at most; past it the SDK drops new ones (an unreachable collector must not grow the heap). */
const EXPORT_QUEUE_SPANS_MAX = 4096;
/** How often queued spans are sent, ms. */
const EXPORT_INTERVAL_MS = 1000;
/** Time an export may take before it is abandoned, ms. */
const EXPORT_TIMEOUT_MS = 10_000;
/** How long a stop waits for the last spans to be sent, ms. */
const STOP_FLUSH_MS_MAX = 2000;
/** The OTLP/HTTP path of traces, appended to an endpoint given without it (as OTEL_EXPORTER_OTLP_ENDPOINT is). */
const TRACES_PATH = '/v1/traces';

/**
 * The OpenTelemetry API with a registered provider, while tracing runs;
 * undefined while it is off, when every helper below only calls its body
 * (the API itself is not even loaded: a node without `--otlp-endpoint` pays
 * for none of it).
 */
let api: { otel: typeof OpenTelemetry; tracer: OpenTelemetry.Tracer } | undefined;

/** A span that records nothing: what `inSpan` hands its body while tracing is off. */
const NOOP_SPAN: Span = {
  spanContext: () => ({ traceId: '00000000000000000000000000000000', spanId: '0000000000000000', traceFlags: 0 }),
  setAttribute: () => NOOP_SPAN,
  setAttributes: () => NOOP_SPAN,
  addEvent: () => NOOP_SPAN,
  addLink: () => NOOP_SPAN,
  addLinks: () => NOOP_SPAN,
  setStatus: () => NOOP_SPAN,
  updateName: () => NOOP_SPAN,
  end: () => {},
  isRecording: () => false,
  recordException: () => {},
};

/** What `startTracing` needs. */
export interface TracingOptions {
  /** The OTLP/HTTP collector: its base URL (`http://host:4318`) or the full traces URL (`…/v1/traces`). */
  endpoint: string;
  /** This node's id: the resource's `service.instance.id` and `hivemind.node.id`. */
  nodeId: string;
  /** Hivemind's version: `service.version`. */
  version: string;
  /** The cluster's id once this node knows it (see `clusterIdOf`): put on each span as `hivemind.cluster.id`. */
  clusterId(): string | undefined;
  /** Where export failures are said (at most once in a while by the caller's logger). */
  log(line: string): void;
}

/** Tracing while it runs; `stop` flushes what is queued and turns it off. */
export interface Tracing {
  /** Sends the spans queued so far and turns tracing off; idempotent, never rejects. */
  stop(): Promise<void>;
}

/** The traces URL `endpoint` stands for (`/v1/traces` appended unless it ends so). */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (!url.pathname.endsWith(TRACES_PATH)) url.pathname = `${url.pathname.replace(/\/+$/, '')}${TRACES_PATH}`;
  return url.toString();
}

/**
 * Loads the SDK and the OTLP/HTTP exporter and registers them process-wide
 * (tracer provider, AsyncLocalStorage context manager, W3C propagator).
 * One agent per process: a second call while the first runs is a bug.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  assert(api === undefined, 'startTracing: tracing already runs in this process');
  const [otel, { NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const say = (message: string): void => options.log(`exporting spans: ${diagnosticText(message)}`);
  otel.diag.setLogger({ error: say, warn: say, info: () => {}, debug: () => {}, verbose: () => {} }, otel.DiagLogLevel.WARN);
  const exporter = new OTLPTraceExporter({ url: tracesUrl(options.endpoint), timeoutMillis: EXPORT_TIMEOUT_MS });
  const batches = new BatchSpanProcessor(exporter, { maxQueueSize: EXPORT_QUEUE_SPANS_MAX, scheduledDelayMillis: EXPORT_INTERVAL_MS, exportTimeoutMillis: EXPORT_TIMEOUT_MS });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': SERVICE_NAME,
      'service.version': options.version,
      'service.instance.id': options.nodeId,
      'hivemind.node.id': options.nodeId,
    }),
    spanProcessors: [
      {
        // The cluster id is known only once the node bootstrapped, restarted or joined: each span takes it then.
        onStart: (span) => {
          const clusterId = options.clusterId();
          if (clusterId !== undefined) span.setAttribute('hivemind.cluster.id', clusterId);
        },
        onEnd: () => {},
        forceFlush: async () => {},
        shutdown: async () => {},
      },
      batches,
    ],
  });
  // The tracer provider, the AsyncLocalStorage context manager and the W3C propagator, process-wide.
  provider.register();
  api = { otel, tracer: otel.trace.getTracer(SERVICE_NAME) };
  let stopping: Promise<void> | undefined;
  return {
    stop: () => {
      stopping ??= (async () => {
        api = undefined;
        // A collector that is down must not hold the agent's stop: the last spans get STOP_FLUSH_MS_MAX.
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_FLUSH_MS_MAX)));
        await Promise.race([provider.shutdown().catch((error: unknown) => options.log(`sending the last spans failed: ${(error as Error).message}`)), late]);
        clearTimeout(timer);
        otel.trace.disable();
        otel.context.disable();
        otel.propagation.disable();
        otel.diag.disable();
      })();
      return stopping;
    },
  };
}

/** The SDK's diagnostic as a line: it reports an export error as the error's JSON, of which the message says enough. */
function diagnosticText(message: string): string {
  try {
    const parsed = JSON.parse(message) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Plain text already.
  }
  return message;
}

/**
 * The cluster's id in traces: the first 16 hex digits of a SHA-256 of the
 * cluster key under a label of its own. Stable for the cluster's life, the
 * same on every member, and telling nothing of the key.
 */
export function clusterIdOf(clusterKey: Uint8Array): string {
  return createHash('sha256').update('hivemind/cluster-id\0').update(clusterKey).digest('hex').slice(0, 16);
}

/** Options of `inSpan`. */
export interface SpanOptions {
  attributes?: Attributes;
  /** The parent (from `contextOf`); default: the active context. */
  parent?: Context | undefined;
  kind?: SpanKind;
  links?: Link[];
  /** When the span began (ms since the epoch); default now. */
  startTimeMs?: number;
}

/**
 * Runs `body` inside a new span named `name`, which is active in it (its
 * awaits included), and ends the span when `body` settles: an exception sets
 * the span's status to error and is thrown on. While tracing is off it only
 * calls `body` (with a span that records nothing).
 */
export function inSpan<T>(name: string, options: SpanOptions, body: (span: Span) => T): T {
  if (api === undefined) return body(NOOP_SPAN);
  const { otel, tracer } = api;
  const parent = options.parent ?? otel.context.active();
  const span = tracer.startSpan(name, spanStartOptions(options), parent);
  const settle = (error?: unknown): void => {
    if (error !== undefined) span.setStatus({ code: otel.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    span.end();
  };
  let result: T;
  try {
    result = otel.context.with(otel.trace.setSpan(parent, span), body, undefined, span);
  } catch (error) {
    settle(error);
    throw error;
  }
  if (result instanceof Promise) {
    return result.then(
      (value: unknown) => {
        settle();
        return value;
      },
      (error: unknown) => {
        settle(error);
        throw error;
      },
    ) as T;
  }
  settle();
  return result;
}

/** Starts a span that the caller ends (`span.end()`), not made active: for spans that end elsewhere. */
export function startSpan(name: string, options: SpanOptions = {}): Span {
  if (api === undefined) return NOOP_SPAN;
  return api.tracer.startSpan(name, spanStartOptions(options), options.parent ?? api.otel.context.active());
}

/** A span of no length: something that happened at one instant (a new term), with its attributes. */
export function recordEvent(name: string, options: SpanOptions = {}): void {
  startSpan(name, options).end();
}

/** Marks `span` failed, saying why (its status; the span still has to end). */
export function markFailed(span: Span, message: string): void {
  span.setStatus({ code: 2 /* SpanStatusCode.ERROR */, message });
}

/** The active context with `span` as its active span (undefined while tracing is off). */
export function contextWith(span: Span): Context | undefined {
  return api?.otel.trace.setSpan(api.otel.context.active(), span);
}

/** Runs `body` with `context` active (its awaits included); just runs it when `context` is undefined. */
export function withContext<T>(context: Context | undefined, body: () => T): T {
  return api === undefined || context === undefined ? body() : api.otel.context.with(context, body);
}

/**
 * Runs `body` outside any trace: for loops and timers armed from inside a
 * traced operation, whose later work belongs to no one request.
 */
export function untraced<T>(body: () => T): T {
  return api === undefined ? body() : api.otel.context.with(api.otel.ROOT_CONTEXT, body);
}

/**
 * `timers` whose callbacks run outside any trace: for the Raft driver, whose
 * loop is woken by whoever proposes (a traced request) and must not carry
 * that request's context into every later turn (its timers re-arm from it).
 */
export function untracedTimers(timers: Timers): Timers {
  return {
    setTimeout: (callback, delayMs) => timers.setTimeout(() => untraced(callback), delayMs),
    setInterval: (callback, intervalMs) => timers.setInterval(() => untraced(callback), intervalMs),
    setImmediate: (callback) => timers.setImmediate(() => untraced(callback)),
    // The driver's apply budget reads the clock through this; without it,
    // the driver falls back to a count of entries per turn.
    ...(timers.nowMs === undefined ? {} : { nowMs: () => timers.nowMs!() }),
  };
}

/** The `traceparent` of the active span (or of `context`'s), or undefined while tracing is off or no span is active. */
export function traceparentOf(context?: Context): string | undefined {
  if (api === undefined) return undefined;
  const carrier: Record<string, string> = {};
  api.otel.propagation.inject(context ?? api.otel.context.active(), carrier);
  const value = carrier[TRACEPARENT_KEY];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The context a `traceparent` from outside names, as a remote parent under
 * the root context; the root context itself when `traceparent` is absent or
 * malformed (the propagator checks it; anything else starts a new trace).
 * Undefined while tracing is off.
 */
export function contextOf(traceparent: unknown): Context | undefined {
  if (api === undefined) return undefined;
  const root = api.otel.ROOT_CONTEXT;
  if (typeof traceparent !== 'string' || traceparent.length === 0 || traceparent.length > TRACEPARENT_CHARS_MAX) return root;
  return api.otel.propagation.extract(root, { [TRACEPARENT_KEY]: traceparent });
}

/** A link to the span a `traceparent` names, or undefined when it names none (or tracing is off). */
export function linkTo(traceparent: unknown): Link | undefined {
  const context = contextOf(traceparent);
  const spanContext = context === undefined ? undefined : api?.otel.trace.getSpanContext(context);
  return spanContext === undefined ? undefined : { context: spanContext };
}

/** The active span, if any (undefined while tracing is off). */
export function activeSpan(): Span | undefined {
  return api?.otel.trace.getActiveSpan();
}

/** The trace and span ids of the active span, for log lines; undefined outside a traced operation (and always while tracing is off). */
export function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  if (api === undefined) return undefined;
  const spanContext = api.otel.trace.getActiveSpan()?.spanContext();
  if (spanContext === undefined || !api.otel.trace.isSpanContextValid(spanContext)) return undefined;
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}

function spanStartOptions(options: SpanOptions): OpenTelemetry.SpanOptions {
  return {
    ...(options.attributes !== undefined ? { attributes: options.attributes } : {}),
    ...(options.kind !== undefined ? { kind: options.kind as number as OpenTelemetry.SpanKind } : {}),
    ...(options.links !== undefined && options.links.length > 0 ? { links: options.links } : {}),
    ...(options.startTimeMs !== undefined ? { startTime: options.startTimeMs } : {}),
  };
}
