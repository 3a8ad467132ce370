/**
 * Test helpers: hand-made histories in a compact form, and a generator of
 * long linearizable histories from a simulated register.
 */

/** One event line of a history, as the recorder writes it. */
export interface EventRecord {
  process: number;
  type: 'invoke' | 'ok' | 'fail' | 'info';
  f: 'read' | 'write' | 'cas';
  key: string;
  value?: unknown;
  time: number;
}

/**
 * One hand-made operation: `outcome` is how it completed; `none` leaves it
 * without a completion. `value` is the written value, `[expected, new]`, or
 * the value read.
 */
export interface HandOperation {
  process: number;
  f: 'read' | 'write' | 'cas';
  key?: string;
  value?: unknown;
  call: number;
  ret: number;
  outcome?: 'ok' | 'fail' | 'info' | 'none';
}

/** The JSON lines of hand-made operations, events ordered by time (times should be distinct). */
export function handHistory(operations: readonly HandOperation[]): string {
  const events: EventRecord[] = [];
  for (const operation of operations) {
    const key = operation.key ?? 'x';
    const outcome = operation.outcome ?? 'ok';
    const invokeValue = operation.f === 'read' ? null : operation.value;
    events.push({ process: operation.process, type: 'invoke', f: operation.f, key, value: invokeValue, time: operation.call });
    if (outcome !== 'none') {
      events.push({ process: operation.process, type: outcome, f: operation.f, key, value: outcome === 'ok' ? operation.value : invokeValue, time: operation.ret });
    }
  }
  events.sort((a, b) => a.time - b.time);
  return toJsonLines(events);
}

/** Events as JSON lines, one a line, with a final newline. */
export function toJsonLines(events: readonly EventRecord[]): string {
  return events.map((event) => JSON.stringify(event)).join('\n') + '\n';
}

/** A seeded generator (mulberry32): the same seed gives the same sequence in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Settings of `generateHistory`. */
export interface GenerateOptions {
  readonly seed: number;
  readonly operationCount: number;
  readonly keyCount: number;
  /** Processes running at once, each one operation at a time. */
  readonly processCount: number;
  /** Share of operations that complete with `info` (and take effect or not, at random). */
  readonly unknownShare: number;
}

interface Planned {
  process: number;
  sequence: number;
  f: 'read' | 'write' | 'cas';
  key: string;
  call: number;
  effect: number;
  ret: number;
  unknown: boolean;
  applied: boolean;
  invokeValue: unknown;
  resultValue: unknown;
  failed: boolean;
}

/**
 * A linearizable history: each process issues operations one after another
 * with random durations; each takes effect on a real register at a random
 * instant inside its interval (unknown ones maybe never). Written values are
 * unique. Returns the events in time order.
 */
export function generateHistory(options: GenerateOptions): EventRecord[] {
  const random = seededRandom(options.seed);
  const integer = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  const planned: Planned[] = [];
  const clocks = Array.from({ length: options.processCount }, () => integer(0, 10));
  for (let index = 0; index < options.operationCount; index++) {
    const process = index % options.processCount;
    const call = (clocks[process] as number) + integer(1, 5);
    const effect = call + integer(0, 20);
    const ret = effect + integer(0, 20);
    clocks[process] = ret;
    const roll = random();
    const f = roll < 0.5 ? 'read' : roll < 0.8 ? 'write' : 'cas';
    const unknown = random() < options.unknownShare;
    planned.push({
      process, sequence: index, f, key: `k${integer(0, options.keyCount - 1)}`, call, effect, ret,
      unknown, applied: !unknown || random() < 0.5, invokeValue: null, resultValue: null, failed: false,
    });
  }
  const register = new Map<string, unknown>();
  let nextValue = 1;
  for (const operation of [...planned].sort((a, b) => a.effect - b.effect || a.sequence - b.sequence)) {
    const current = register.get(operation.key) ?? null;
    if (operation.f === 'read') {
      operation.resultValue = current;
    } else if (operation.f === 'write') {
      operation.invokeValue = nextValue++;
      if (operation.applied) register.set(operation.key, operation.invokeValue);
    } else {
      const expected = random() < 0.6 ? current : -nextValue;
      operation.invokeValue = [expected, nextValue++];
      operation.failed = expected !== current;
      if (operation.applied && !operation.failed) register.set(operation.key, nextValue - 1);
    }
    operation.resultValue = operation.f === 'read' ? operation.resultValue : operation.invokeValue;
  }
  const events: Array<EventRecord & { order: number }> = [];
  for (const operation of planned) {
    const base = { process: operation.process, f: operation.f, key: operation.key };
    events.push({ ...base, type: 'invoke', value: operation.invokeValue, time: operation.call, order: operation.sequence * 2 });
    const type = operation.unknown ? 'info' : operation.failed ? 'fail' : 'ok';
    events.push({ ...base, type, value: operation.resultValue, time: operation.ret, order: operation.sequence * 2 + 1 });
  }
  events.sort((a, b) => a.time - b.time || a.order - b.order);
  return events.map(({ order: _order, ...event }) => event);
}
