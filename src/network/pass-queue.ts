/**
 * Runs a component's passes one at a time: a pass asked for while another
 * runs waits, a pass asked for again before it starts runs once, and the
 * passes due are taken in a fixed priority order (the first of `order`
 * first). A pass starts on a microtask after it is asked for, never on a
 * timer, so the requests of one synchronous batch (the applies of one log
 * batch) make one pass. No I/O of its own; a pass that rejects is reported
 * and the queue goes on.
 */

export class PassQueue<Pass extends string> {
  readonly #order: readonly Pass[];
  readonly #run: (pass: Pass) => Promise<void>;
  readonly #onError: (pass: Pass, error: Error) => void;
  readonly #due = new Set<Pass>();
  #running: Promise<void> | undefined;
  #stopped = false;

  /** `order`: every pass, highest priority first. `run` carries one out; `onError` hears a pass that rejected. */
  constructor(order: readonly Pass[], run: (pass: Pass) => Promise<void>, onError: (pass: Pass, error: Error) => void) {
    this.#order = order;
    this.#run = run;
    this.#onError = onError;
  }

  /** Marks `pass` due and starts the queue if it is idle. Ignored once stopped. */
  request(pass: Pass): void {
    if (this.#stopped) return;
    this.#due.add(pass);
    if (this.#running) return;
    this.#running = Promise.resolve()
      .then(() => this.#drain())
      .finally(() => {
        this.#running = undefined;
        const next = this.#next();
        if (next !== undefined) this.request(next);
      });
  }

  /** Whether `pass` is due and has not started yet. */
  isDue(pass: Pass): boolean {
    return this.#due.has(pass);
  }

  /** Takes no more requests; resolves once the pass running (if any) ends. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#due.clear();
    await this.#running;
  }

  async #drain(): Promise<void> {
    for (let pass = this.#next(); pass !== undefined && !this.#stopped; pass = this.#next()) {
      const current = pass;
      this.#due.delete(current);
      await this.#run(current).catch((error: Error) => this.#onError(current, error));
    }
  }

  #next(): Pass | undefined {
    return this.#order.find((pass) => this.#due.has(pass));
  }
}
