/**
 * Copies of proposals' bytes, packed one after another into slabs that hold
 * nothing else. A proposal's bytes stay in the Raft log until the next
 * compaction (up to `snapshotEveryEntries` of them). Straight out of
 * msgpackr they would be views into its encode buffer, which every Packr of
 * the process shares and fills with short-lived packs too (the transport's
 * batches, the storage's runs): a leader with 65,000 entries of 330 bytes in
 * its log pinned 886 of those buffers, 65 MB, three times the entries' size.
 * Entries leave the log oldest first, so a slab is freed once the last entry
 * in it is compacted.
 */
import { assert } from '../core/assert.js';

/** Bytes per slab. */
export const SLAB_BYTES = 64 * 1024;
/** A copy larger than this gets a buffer of its own, so that a slab never wastes more than this at its end. */
export const SLAB_COPY_BYTES_MAX = SLAB_BYTES / 8;

/** Hands out copies packed into slabs; see the file comment. Not shared between threads. */
export class EntrySlabs {
  private slab: Buffer | undefined;
  private offset = 0;

  /** A copy of `bytes` that shares its memory only with other copies made here. */
  copy(bytes: Uint8Array): Buffer {
    const length = bytes.byteLength;
    if (length > SLAB_COPY_BYTES_MAX) {
      const own = Buffer.allocUnsafeSlow(length);
      own.set(bytes);
      return own;
    }
    if (this.slab === undefined || this.offset + length > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.offset = 0;
    }
    const copy = this.slab.subarray(this.offset, this.offset + length);
    copy.set(bytes);
    this.offset += length;
    assert(this.offset <= this.slab.length, 'EntrySlabs: a copy ran past its slab');
    return copy;
  }
}
