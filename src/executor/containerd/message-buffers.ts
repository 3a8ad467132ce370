/**
 * A few large buffers reused for the messages of one content stream.
 *
 * Why: a fresh 1 MiB buffer costs far more than filling one (the kernel
 * faults in and zeroes its pages, and the garbage collector follows it), so
 * a stream that encodes each chunk into a new buffer spends more on memory
 * than on copying. A stream takes a buffer, fills it with one encoded
 * message, and gives it back once the message is sent: for a content
 * write (sent as it is, content-write.ts), when containerd has answered
 * it; for a peer's ReadChunk, once HTTP/2 has sent it
 * (src/agent/image-read-stream.ts).
 */
import { assert } from '../../../consensus/core/assert.js';

/** Reusable buffers of one size, at most `countMax` of them at once. */
export class MessageBuffers {
  private readonly free: Buffer[] = [];
  private made = 0;

  constructor(
    /** Bytes of each buffer. */
    readonly bufferBytes: number,
    /** Buffers out at once at most. */
    readonly countMax: number,
  ) {
    assert(Number.isInteger(bufferBytes) && bufferBytes > 0, `bufferBytes must be a positive integer, not ${bufferBytes}`);
    assert(Number.isInteger(countMax) && countMax > 0, `countMax must be a positive integer, not ${countMax}`);
  }

  /** A buffer now, if one is free or may still be made; undefined when all `countMax` are out. */
  takeNow(): Buffer | undefined {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.made >= this.countMax) return undefined;
    this.made += 1;
    return Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  /** Gives back a buffer `takeNow` gave; the caller no longer touches it. */
  give(buffer: Buffer): void {
    assert(buffer.length === this.bufferBytes, () => 'gave back a buffer this pool did not make');
    this.free.push(buffer);
    assert(this.free.length <= this.made, () => 'more buffers given back than taken');
  }
}
