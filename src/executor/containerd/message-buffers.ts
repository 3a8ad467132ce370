/**
 * A few large buffers reused for the messages of one content stream.
 *
 * Why: a fresh 1 MiB buffer costs far more than filling one (the kernel
 * faults in and zeroes its pages, and the garbage collector follows it), so
 * a stream that encodes each chunk into a new buffer spends more on memory
 * than on copying. A stream takes a buffer, fills it with one encoded
 * message, and gives it back once gRPC has framed the message (grpc-js
 * copies it into a frame of its own before it writes anything): on the
 * client when containerd has answered the message, on a server from the
 * write's callback.
 */
import { assert } from '../../../consensus/core/assert.js';

/** Reusable buffers of one size, at most `countMax` of them at once. */
export class MessageBuffers {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<(buffer: Buffer | undefined) => void> = [];
  private made = 0;

  constructor(
    /** Bytes of each buffer. */
    readonly bufferBytes: number,
    /** Buffers out at once at most; `take` waits for one when all are out. */
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

  /**
   * A buffer, once one is free; undefined if `signal` aborts first (a
   * buffer out with a write that will never finish, as on a cancelled
   * call, does not come back).
   */
  take(signal?: AbortSignal): Promise<Buffer | undefined> {
    const buffer = this.takeNow();
    if (buffer !== undefined) return Promise.resolve(buffer);
    if (signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter = (given: Buffer | undefined): void => {
        signal?.removeEventListener('abort', abort);
        resolve(given);
      };
      const abort = (): void => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', abort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Gives back a buffer `take` gave; the caller no longer touches it. */
  give(buffer: Buffer): void {
    assert(buffer.length === this.bufferBytes, () => 'gave back a buffer this pool did not make');
    const next = this.waiting.shift();
    if (next !== undefined) next(buffer);
    else this.free.push(buffer);
    assert(this.free.length <= this.made, () => 'more buffers given back than taken');
  }
}
