/**
 * The bridge between the Raft driver and the cluster state machine: entries
 * carry msgpackr-encoded `Envelope`s; applying one decodes it and hands it to
 * `ClusterStateMachine.apply` at the entry's index. Snapshots are the
 * machine's own.
 *
 * Decoding is deterministic (the same bytes decode the same on every node),
 * and bytes that do not decode are passed on as `undefined`, which the
 * machine refuses as an invalid envelope: a malformed entry never stops a node.
 *
 * Listeners hear of every apply and restore after the state changed, on the
 * driver's loop; they must be quick and must not throw.
 */
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import type { Entry } from '../../consensus/core/types.js';
import type { StateMachine } from '../../consensus/node.js';
import { ClusterStateMachine } from '../state/machine.js';
import type { CommandResult, Envelope } from '../state/types.js';

const packr = new Packr({ useRecords: false });

/** Encodes an envelope for `RaftNode.propose`. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return new Uint8Array(packr.pack(envelope));
}

/** Encodes any plain value the same way (a command result for Cluster.Submit). */
export function encodeValue(value: unknown): Uint8Array {
  return new Uint8Array(packr.pack(value));
}

/** Decodes an entry's data; `undefined` when it is not msgpack. */
export function decodeEnvelope(data: Uint8Array): unknown {
  try {
    return packr.unpack(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } catch {
    return undefined;
  }
}

/** What listeners hear after each change of the state. */
export type StateEvent =
  | { type: 'applied'; index: number; commandType: string | undefined; result: CommandResult }
  | { type: 'restored'; index: number };

/** Hears every state change; runs on the Raft loop, must be quick and not throw. */
export type StateListener = (event: StateEvent) => void;

/** Blocking queries waiting at once; one more is refused (the caller answers 503). */
export const INDEX_WAITERS_MAX = 4096;

interface IndexWaiter {
  index: number;
  wake: () => void;
}

/**
 * The `StateMachine` the Raft driver runs. Owns the `ClusterStateMachine`;
 * readers use `machine` between applies (everything runs on one thread).
 */
export class ReplicatedState implements StateMachine {
  readonly machine = new ClusterStateMachine();
  private readonly listeners = new Set<StateListener>();
  private waiters: IndexWaiter[] = [];
  /** Receives the duration of each apply, in seconds (for metrics). */
  onApplyDuration: (seconds: number) => void = () => {};
  /** Receives each snapshot encoded or restored: its size and how long it took, in seconds (for metrics). */
  onSnapshot: (operation: 'encode' | 'restore', bytes: number, seconds: number) => void = () => {};

  apply(entry: Entry): CommandResult {
    const started = performance.now();
    const envelope = decodeEnvelope(entry.data);
    const result = this.machine.apply(entry.index, envelope);
    this.onApplyDuration((performance.now() - started) / 1000);
    this.emit({ type: 'applied', index: entry.index, commandType: commandTypeOf(envelope), result });
    return result;
  }

  snapshot(): Uint8Array {
    const started = performance.now();
    const data = this.machine.snapshot();
    this.onSnapshot('encode', data.length, (performance.now() - started) / 1000);
    return data;
  }

  restore(data: Uint8Array): void {
    const started = performance.now();
    this.machine.restore(data);
    this.onSnapshot('restore', data.length, (performance.now() - started) / 1000);
    this.emit({ type: 'restored', index: this.machine.appliedIndex });
  }

  /**
   * Resolves once the applied index is above `index` (true), or when
   * `timeoutMs` passes or `signal` aborts (false). Resolves at once if it
   * already is. Returns undefined, without waiting, when INDEX_WAITERS_MAX
   * queries already wait.
   */
  waitBeyond(index: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> | undefined {
    if (this.machine.appliedIndex > index) return Promise.resolve(true);
    if (this.waiters.length >= INDEX_WAITERS_MAX) return undefined;
    return new Promise<boolean>((resolve) => {
      const finish = (reached: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters = this.waiters.filter((waiter) => waiter !== entry);
        resolve(reached);
      };
      const onAbort = (): void => finish(false);
      const entry: IndexWaiter = { index, wake: () => finish(true) };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.push(entry);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Adds a listener; returns the function that removes it. */
  listen(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: StateEvent): void {
    for (const listener of this.listeners) listener(event);
    if (this.waiters.length === 0) return;
    const applied = this.machine.appliedIndex;
    for (const waiter of this.waiters.filter((candidate) => candidate.index < applied)) waiter.wake();
  }
}

function commandTypeOf(envelope: unknown): string | undefined {
  if (typeof envelope !== 'object' || envelope === null) return undefined;
  const command = (envelope as { command?: unknown }).command;
  if (typeof command !== 'object' || command === null) return undefined;
  const type = (command as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}
