/**
 * The agent's log lines: `<ISO time> <node> <component>: <text>`, and the
 * same line at most once per `repeatIntervalMs` for a key (a loop that
 * fails the same way every second says so once in a while, not every time).
 */
import type { Clock } from '../node/clock.js';

/** Lines remembered for `once`, at most; past it the memory starts over (a line may then repeat early). */
const REMEMBERED_KEYS_MAX = 1000;

/** See the file comment. */
export class AgentLog {
  readonly #lastLogged = new Map<string, number>();

  constructor(
    private readonly options: {
      nodeId: string;
      write: (line: string) => void;
      clock: Clock;
      /** How long a keyed line stays quiet after it was written, ms. */
      repeatIntervalMs: number;
    },
  ) {}

  /** Writes `text` as `component`'s. */
  line(component: string, text: string): void {
    this.options.write(`${new Date(this.options.clock.now()).toISOString()} ${this.options.nodeId} ${component}: ${text}`);
  }

  /** Writes `text` unless a line under `key` was written less than `repeatIntervalMs` ago. */
  once(key: string, component: string, text: string): void {
    const now = this.options.clock.now();
    const last = this.#lastLogged.get(key);
    if (last !== undefined && now - last < this.options.repeatIntervalMs) return;
    if (this.#lastLogged.size > REMEMBERED_KEYS_MAX) this.#lastLogged.clear();
    this.#lastLogged.set(key, now);
    this.line(component, text);
  }
}
