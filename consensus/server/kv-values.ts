/**
 * Where the key-value state machine keeps its values (`KvStateMachine`): a
 * map of keys to values with a frozen view for background snapshots. Two
 * implementations: `MemoryKvValues` here (tests, small states) and
 * `LevelKvValues` (./kv-values-level.ts: the server's, values in LevelDB
 * outside the JavaScript heap). Keys are latin1 strings, one char per byte of
 * the key (`keyText`).
 */
import { assert } from '../core/assert.js';

/** Values handed out per slice of a frozen view. */
export const VALUES_SLICE_ITEMS_MAX = 2048;

/** One key as stored: its bytes and its value. */
export type KeyValue = [key: Uint8Array, value: Uint8Array];

/**
 * The values as they were when `freeze` was called, read a slice at a time;
 * `set`s and `replace`s after the call do not show in it. `close` releases it
 * (also before the end); one at a time per store.
 */
export interface FrozenValues {
  /** The next at most `VALUES_SLICE_ITEMS_MAX` values, in no particular order; empty at the end. */
  next(): Promise<KeyValue[]>;
  close(): Promise<void>;
}

/**
 * The values of the state machine. `get`, `set` and `replace` are synchronous
 * and see every earlier `set` and `replace` at once, whatever the store does
 * in the background.
 */
export interface KvValues {
  get(key: string): Uint8Array | undefined;
  /** Sets `key`; the store may keep `value` (it must not change afterwards). */
  set(key: string, value: Uint8Array): void;
  /** Replaces every value with `entries` (a restore); keeps their values as `set` does. */
  replace(entries: readonly KeyValue[]): void;
  /** A frozen view of the values as of this call; see `FrozenValues`. */
  freeze(): FrozenValues;
  /**
   * Every value, synchronously; the store may refuse (`LevelKvValues` does,
   * since LevelDB has no synchronous iterator: its state machine snapshots
   * only in the background).
   */
  all(): KeyValue[];
}

/** A key's bytes as a map key: one char per byte. */
export function keyText(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** The bytes of a `keyText` string. */
export function keyBytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

/** The values in a JavaScript `Map`; a frozen view diverts later sets to an overlay until it closes. */
export class MemoryKvValues implements KvValues {
  private values = new Map<string, Uint8Array>();
  /** While a view is frozen: the sets made since, which `get` reads first; merged when it closes. */
  private overlay: Map<string, Uint8Array> | undefined;

  get(key: string): Uint8Array | undefined {
    return this.overlay?.get(key) ?? this.values.get(key);
  }

  set(key: string, value: Uint8Array): void {
    (this.overlay ?? this.values).set(key, value);
  }

  replace(entries: readonly KeyValue[]): void {
    // A frozen view keeps the old map; the overlay of the replaced state is dropped with it.
    this.values = new Map(entries.map(([key, value]) => [keyText(key), value]));
    this.overlay = undefined;
  }

  freeze(): FrozenValues {
    assert(this.overlay === undefined, 'MemoryKvValues: one frozen view at a time');
    const values = this.values;
    const overlay = new Map<string, Uint8Array>();
    this.overlay = overlay;
    const iterator = values.entries();
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      // A replace meanwhile dropped this overlay with the state it belonged to: nothing to merge.
      if (this.overlay !== overlay) return;
      for (const [key, value] of overlay) values.set(key, value);
      this.overlay = undefined;
    };
    return {
      next: async () => {
        assert(!closed, 'MemoryKvValues: a closed view was read');
        const slice: KeyValue[] = [];
        for (let step = iterator.next(); !step.done; step = iterator.next()) {
          slice.push([keyBytes(step.value[0]), step.value[1]]);
          if (slice.length === VALUES_SLICE_ITEMS_MAX) break;
        }
        return slice;
      },
      close,
    };
  }

  all(): KeyValue[] {
    const merged = this.overlay === undefined ? this.values : new Map([...this.values, ...this.overlay]);
    return [...merged].map(([key, value]) => [keyBytes(key), value]);
  }
}
