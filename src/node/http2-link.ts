/**
 * One client HTTP/2 connection, made on first need and again after it
 * closes or is told to go away, that keeps the process alive only while a
 * stream of it is open. The hand-framed gRPC clients share it: the peer
 * blob reader (src/agent/image-read-stream.ts) and containerd's content
 * writer (src/executor/containerd/content-write.ts).
 */
import type * as http2 from 'node:http2';

export class Http2Link {
  #session: http2.ClientHttp2Session | undefined;
  #open = 0;
  #closed = false;

  /** `connect` makes a new connection (unreferenced by the link at once); it may throw. */
  constructor(private readonly connect: () => http2.ClientHttp2Session) {}

  /** Whether `close` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The connection, made now when there is none usable; throws what `connect` throws. */
  session(): http2.ClientHttp2Session {
    if (this.#session !== undefined && !this.#session.closed && !this.#session.destroyed) return this.#session;
    const session = this.connect();
    // A failure of the connection reaches each open stream as its error or close.
    session.on('error', () => undefined);
    const forget = (): void => {
      if (this.#session === session) this.#session = undefined;
    };
    session.on('close', forget);
    session.on('goaway', forget);
    session.unref();
    this.#session = session;
    return session;
  }

  /** Opens a stream on `session` (from `session()`), the process kept alive while any stream of the link is open. */
  request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream {
    const stream = session.request(headers);
    if (this.#open++ === 0) session.ref();
    stream.on('close', () => {
      if (--this.#open === 0 && !session.destroyed) session.unref();
    });
    return stream;
  }

  /** Forgets `session` and closes it, letting its open streams finish: the next stream gets a new connection. */
  drop(session: http2.ClientHttp2Session): void {
    if (this.#session === session) this.#session = undefined;
    session.close();
  }

  /** Ends the link for good: `destroy` ends its open streams at once, `close` lets them finish. Idempotent. */
  close(how: 'close' | 'destroy'): void {
    this.#closed = true;
    if (how === 'destroy') this.#session?.destroy();
    else this.#session?.close();
    this.#session = undefined;
  }
}
