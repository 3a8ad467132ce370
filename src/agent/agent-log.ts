/**
 * The agent's log: one pino logger, with levels and fields (`node`,
 * `component`, and `trace_id` / `span_id` on every line written inside a
 * traced operation, read from the active span: src/node/tracing.ts).
 *
 * Where lines go: to stderr as JSON, one object a line, when stderr is not a
 * terminal (a service manager, a pipe, a file); as a readable line when it
 * is, or to the `write` a caller gives (tests, embeddings):
 * `<ISO time> <node> <component>[ LEVEL]: <text>[ [trace <id>]]`, LEVEL only
 * when it is not info. `readableLogLine` turns a JSON line back into that,
 * for whoever reads a piped agent's output.
 *
 * `once` writes the same line at most once per `repeatIntervalMs` for a key
 * (a loop that fails the same way every second says so once in a while, not
 * every time).
 */
import { pino, type Logger } from 'pino';
import type { Clock } from '../node/clock.js';
import type { LogLevel } from '../node/log-level.js';
import { activeTraceIds } from '../node/tracing.js';

export { LOG_LEVELS, type LogLevel } from '../node/log-level.js';

/** Lines remembered for `once`, at most; past it the memory starts over (a line may then repeat early). */
const REMEMBERED_KEYS_MAX = 1000;

/** What the agent log is built from. */
export interface AgentLogOptions {
  nodeId: string;
  /** Readable lines go here (tests, embeddings). Absent: stderr, JSON unless stderr is a terminal. */
  write?: (line: string) => void;
  /** The time each line carries. */
  clock: Clock;
  /** How long a keyed line stays quiet after it was written, ms. */
  repeatIntervalMs: number;
  /** Lines below this level are not written. Default info. */
  level?: LogLevel;
}

/** A line as the JSON form holds it (the fields this log writes; others are kept by pino as given). */
interface LogRecord {
  time?: unknown;
  level?: unknown;
  node?: unknown;
  component?: unknown;
  msg?: unknown;
  trace_id?: unknown;
}

/** See the file comment. */
export class AgentLog {
  readonly #lastLogged = new Map<string, number>();
  readonly #logger: Logger;
  readonly #components = new Map<string, Logger>();

  constructor(private readonly options: AgentLogOptions) {
    const write = options.write;
    const json = write === undefined && !process.stderr.isTTY;
    const destination = json
      ? pino.destination({ fd: 2, sync: true })
      : { write: (chunk: string) => (write ?? writeStderr)(readableLogLine(chunk)) };
    this.#logger = pino(
      {
        level: options.level ?? 'info',
        base: { node: options.nodeId },
        timestamp: () => `,"time":"${new Date(options.clock.now()).toISOString()}"`,
        formatters: { level: (label) => ({ level: label }) },
        mixin: () => {
          const ids = activeTraceIds();
          return ids === undefined ? {} : { trace_id: ids.traceId, span_id: ids.spanId };
        },
      },
      destination,
    );
  }

  /** Writes `text` as `component`'s, at info. */
  line(component: string, text: string): void {
    this.#component(component).info(text);
  }

  /** Writes `text` as `component`'s at `level`. */
  at(level: LogLevel, component: string, text: string): void {
    this.#component(component)[level](text);
  }

  /** Writes `text` at warn: something failed and will be retried, or needs an operator's eye. */
  warn(component: string, text: string): void {
    this.at('warn', component, text);
  }

  /** Writes `text` at error: the node cannot go on as it should. */
  error(component: string, text: string): void {
    this.at('error', component, text);
  }

  /** Writes `text` (at `level`, default info) unless a line under `key` was written less than `repeatIntervalMs` ago. */
  once(key: string, component: string, text: string, level: LogLevel = 'info'): void {
    const now = this.options.clock.now();
    const last = this.#lastLogged.get(key);
    if (last !== undefined && now - last < this.options.repeatIntervalMs) return;
    if (this.#lastLogged.size > REMEMBERED_KEYS_MAX) this.#lastLogged.clear();
    this.#lastLogged.set(key, now);
    this.at(level, component, text);
  }

  #component(component: string): Logger {
    let logger = this.#components.get(component);
    if (logger === undefined) {
      logger = this.#logger.child({ component });
      this.#components.set(component, logger);
    }
    return logger;
  }
}

function writeStderr(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * The readable form of one JSON log line (see the file comment); a line that
 * is not one of this log's JSON objects comes back as it is (trailing newline
 * dropped).
 */
export function readableLogLine(line: string): string {
  const text = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!text.startsWith('{')) return text;
  let record: LogRecord;
  try {
    record = JSON.parse(text) as LogRecord;
  } catch {
    return text;
  }
  if (typeof record !== 'object' || record === null || typeof record.msg !== 'string') return text;
  const level = typeof record.level === 'string' && record.level !== 'info' ? ` ${record.level.toUpperCase()}` : '';
  const trace = typeof record.trace_id === 'string' ? ` [trace ${record.trace_id}]` : '';
  return `${String(record.time)} ${String(record.node)} ${String(record.component)}${level}: ${record.msg}${trace}`;
}
