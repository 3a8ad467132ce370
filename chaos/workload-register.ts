/**
 * The `register` workload: clients, a few per node, each a history process
 * doing one operation at a time on a few keys of the KV store through its
 * node's API: linearizable reads, writes of values unique to the run, and
 * compare-and-sets.
 *
 * How outcomes are recorded:
 * - an answer 2xx is `ok` (a 404 on a read is `ok` with null: never written);
 * - a read that fails in any way is `fail` (a read has no effect), except a
 *   timeout after sending, recorded as `info` like any unknown outcome;
 * - a write or cas refused with 4xx is `fail` (validated, refused before any
 *   proposal); a connection never made is `fail` (nothing was sent); any
 *   other end (5xx, a timeout or broken connection after sending) is `info`:
 *   the command may have been, or may later be, committed.
 *
 * Compare-and-set. The KV store compares versions (`expectVersion`), the
 * checker compares values (`cas [expected, new]`). The client first reads the
 * key (a linearizable read, recorded as the read it is), getting value `v`
 * and version `r` (0 and null when absent), then sends `PUT {value: new,
 * expectVersion: r}` and records `cas [v, new]`, invoked when the PUT is
 * sent. This is faithful because every value is written once: a key's
 * version is the Raft index of the write that set its value, so "the version
 * is still r" holds exactly when "the value is still v" (the write that made
 * `v` is the only one that could have set it).
 */
import { apiErrorCode, type ApiClient, type HttpOutcome } from './http.js';
import { SeededRandom } from './random.js';
import type { HistoryEvent, HistoryRecorder } from './recorder.js';

/** A node the workload talks to: its name (for the record) and API origin. */
export interface WorkloadTarget {
  readonly name: () => string;
  readonly origin: string;
}

/** Settings of the register workload. */
export interface RegisterWorkloadOptions {
  readonly seed: number;
  readonly keys: readonly string[];
  readonly targets: readonly WorkloadTarget[];
  readonly clientsPerNode: number;
  readonly client: ApiClient;
  readonly recorder: HistoryRecorder;
  /** Pause between one client's operations, drawn from [0, thinkMsMax]. */
  readonly thinkMsMax: number;
  /** Pause after a fail or info, so clients do not spin on a down node. */
  readonly backoffMs: number;
}

type Outcome = { type: 'ok'; value?: unknown } | { type: 'fail' | 'info'; error: string };

function kvPath(key: string): string {
  return `/v1/kv/${encodeURIComponent(key)}`;
}

function describe(outcome: HttpOutcome): string {
  if (outcome.kind !== 'answer') return outcome.message;
  return `${outcome.status} ${apiErrorCode(outcome.body) ?? ''}`.trim();
}

/** Runs the clients until `stop()`; `stopped()` resolves once every client has finished its last operation. */
export class RegisterWorkload {
  private running = true;
  private readonly clients: Promise<void>[] = [];

  constructor(private readonly options: RegisterWorkloadOptions) {}

  start(): void {
    const { targets, clientsPerNode } = this.options;
    for (let slot = 0; slot < clientsPerNode; slot++) {
      for (const target of targets) {
        const process = slot * targets.length + targets.indexOf(target);
        this.clients.push(this.runClient(process, target));
      }
    }
  }

  /** Asks every client to stop after its current operation and waits for them. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.clients);
  }

  private async runClient(process: number, target: WorkloadTarget): Promise<void> {
    const random = SeededRandom.derive(this.options.seed, `client-${process}`);
    let counter = 0;
    while (this.running) {
      const key = random.pick(this.options.keys);
      const roll = random.next();
      let outcome: Outcome;
      if (roll < 0.5) {
        outcome = await readRegister(this.options, process, target, key).then((read) => read.outcome);
      } else if (roll < 0.8) {
        outcome = await writeRegister(this.options, process, target, key, `${process}.${++counter}`);
      } else {
        const read = await readRegister(this.options, process, target, key);
        if (read.outcome.type === 'ok' && this.running) {
          outcome = await compareAndSet(this.options, process, target, key, read.outcome.value ?? null, read.version, `${process}.${++counter}`);
        } else {
          outcome = read.outcome;
        }
      }
      const pauseMs = outcome.type === 'ok' ? random.integer(0, this.options.thinkMsMax) : this.options.backoffMs;
      if (pauseMs > 0 && this.running) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}

function complete(recorder: HistoryRecorder, invoke: HistoryEvent, outcome: Outcome): void {
  recorder.record({
    process: invoke.process,
    type: outcome.type,
    f: invoke.f,
    key: invoke.key,
    ...(invoke.f === 'read' ? (outcome.type === 'ok' ? { value: outcome.value } : {}) : { value: invoke.value }),
    ...(outcome.type === 'ok' ? {} : { error: outcome.error }),
    ...(invoke.node === undefined ? {} : { node: invoke.node }),
  });
}

/** A recorded linearizable read; on success also the version read (0 when absent). */
export async function readRegister(
  options: Pick<RegisterWorkloadOptions, 'client' | 'recorder'>,
  process: number,
  target: WorkloadTarget,
  key: string,
): Promise<{ outcome: Outcome; version: number }> {
  const invoke = options.recorder.record({ process, type: 'invoke', f: 'read', key, node: target.name() });
  const answer = await options.client.call(target.origin, 'GET', kvPath(key));
  let outcome: Outcome;
  let version = 0;
  if (answer.kind === 'answer' && answer.status === 200 && typeof answer.body?.value === 'string' && Number.isSafeInteger(answer.body?.version)) {
    outcome = { type: 'ok', value: answer.body.value };
    version = answer.body.version;
  } else if (answer.kind === 'answer' && answer.status === 404 && apiErrorCode(answer.body) === 'not-found') {
    outcome = { type: 'ok', value: null };
  } else {
    outcome = { type: answer.kind === 'unknown' ? 'info' : 'fail', error: describe(answer) };
  }
  complete(options.recorder, invoke, outcome);
  return { outcome, version };
}

function writeOutcome(answer: HttpOutcome): Outcome {
  if (answer.kind === 'answer' && answer.status >= 200 && answer.status < 300) return { type: 'ok' };
  if (answer.kind === 'not-sent') return { type: 'fail', error: describe(answer) };
  if (answer.kind === 'answer' && answer.status >= 400 && answer.status < 500) return { type: 'fail', error: describe(answer) };
  return { type: 'info', error: describe(answer) };
}

async function writeRegister(options: RegisterWorkloadOptions, process: number, target: WorkloadTarget, key: string, value: string): Promise<Outcome> {
  const invoke = options.recorder.record({ process, type: 'invoke', f: 'write', key, value, node: target.name() });
  const outcome = writeOutcome(await options.client.call(target.origin, 'PUT', kvPath(key), { value }));
  complete(options.recorder, invoke, outcome);
  return outcome;
}

async function compareAndSet(
  options: RegisterWorkloadOptions,
  process: number,
  target: WorkloadTarget,
  key: string,
  expected: unknown,
  expectVersion: number,
  value: string,
): Promise<Outcome> {
  const invoke = options.recorder.record({ process, type: 'invoke', f: 'cas', key, value: [expected, value], node: target.name() });
  const outcome = writeOutcome(await options.client.call(target.origin, 'PUT', kvPath(key), { value, expectVersion }));
  complete(options.recorder, invoke, outcome);
  return outcome;
}
