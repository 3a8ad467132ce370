/**
 * Images between nodes, on containerd's side: this node's content store
 * as an `ImageShare` its peers read (src/node/image-share.ts), and the
 * fetch that copies an image from a peer's share into this node's store.
 *
 * A fetched image is stored exactly as a pulled one is (`storeImage`): the
 * peer is a source of bytes, never of trust. Every document is hashed as it
 * arrives, and every layer by containerd as it is written (a commit whose
 * digest differs is refused), so nothing is kept unless it matches the
 * digest that the tree above it names; the top of the tree is the digest the peer named for
 * the image, which is as far as a tag can be checked anywhere.
 */
import { isContainerdError, mapError } from './client.js';
import { readFileChunks, type ContentFileLookup } from './content-files.js';
import { ImageError, type Descriptor, type ImageStore, type ResolvedImage } from './images.js';
import { sha256Digest } from './oci-layout.js';
import type { ImageShare, PeerImageSource, SharedImageTarget } from '../../node/image-share.js';

/** Largest manifest, index or config taken from a peer. */
const DOCUMENT_BYTES_MAX = 4 * 1024 * 1024;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/**
 * Bytes per read of a blob's content file when serving it: 1 MiB, eight of
 * the peer's messages (READ_CHUNK_DATA_BYTES_MAX in src/agent/image-read-stream.ts).
 * Each read is a trip to libuv's thread pool and back; at 128 KiB a read
 * the trips were about a twentieth of the serving process's CPU
 * (bench:executor --mode images, 2 cores under load).
 */
const SERVE_CHUNK_BYTES = 1024 * 1024;

/** A blob that is not in the content store; `code` is what `ImageShare.read` promises. */
export class BlobNotFoundError extends Error {
  override readonly name = 'BlobNotFoundError';
  readonly code = 'not-found';
}

/**
 * This node's images as its peers see them. `store` is undefined while the
 * runtime has not opened containerd: such a node holds no image to lend.
 */
export class ContainerdImageShare implements ImageShare {
  constructor(private readonly store: () => ImageStore | undefined) {}

  async describe(name: string): Promise<SharedImageTarget | undefined> {
    const store = this.store();
    if (store === undefined) return undefined;
    try {
      const target = await store.getImage(name);
      return { mediaType: target.mediaType, digest: target.digest, size: target.size };
    } catch (error) {
      if (error instanceof ImageError && error.code === 'image-not-found') return undefined;
      throw error;
    }
  }

  /**
   * Serves blob `digest` from containerd's file of it when this process can
   * read it (content-files.ts), else through containerd's content Read.
   * A chunk is the caller's until it asks for the next one.
   */
  async *read(digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    if (!DIGEST.test(digest)) throw new ImageError('invalid-reference', `"${digest}" is not a sha256 digest`);
    const store = this.store();
    if (store === undefined) throw new BlobNotFoundError(`blob ${digest} is not on this node`);
    let found: ContentFileLookup;
    try {
      found = await store.contentFiles.open(digest);
    } catch (error) {
      throw mapError(`content info of ${digest}`, store.client.socketPath, error);
    }
    if (found.kind === 'not-found') throw new BlobNotFoundError(`blob ${digest} is not on this node`);
    if (found.kind === 'file') {
      yield* readFileChunks(found.file, found.sizeBytes, SERVE_CHUNK_BYTES, signal);
      return;
    }
    const stream = store.client.serverStream<{ data: Buffer }>('content', 'Read', { digest, offset: 0, size: 0 });
    const cancel = () => stream.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const message of stream) yield message.data;
    } catch (error) {
      if (isContainerdError(error, 'not-found') || (error as { code?: number }).code === 5) throw new BlobNotFoundError(`blob ${digest} is not on this node`);
      throw mapError(`content read of ${digest}`, store.client.socketPath, error);
    } finally {
      signal?.removeEventListener('abort', cancel);
      stream.cancel();
    }
  }
}

/** Reads a whole document from `share`, refusing more than the limit or bytes that do not hash to `descriptor.digest`. */
async function readDocument(share: ImageShare, descriptor: Descriptor, from: string, signal?: AbortSignal): Promise<Buffer> {
  if (descriptor.size > DOCUMENT_BYTES_MAX) throw new ImageError('bad-archive', `${descriptor.mediaType} ${descriptor.digest} from ${from} is ${descriptor.size} bytes, over the ${DOCUMENT_BYTES_MAX} a document may have`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of share.read(descriptor.digest, signal)) {
    total += chunk.length;
    if (total > DOCUMENT_BYTES_MAX) throw new ImageError('bad-archive', `${descriptor.digest} from ${from} is larger than ${DOCUMENT_BYTES_MAX} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  const bytes = Buffer.concat(chunks);
  const actual = sha256Digest(bytes);
  if (actual !== descriptor.digest) throw new ImageError('digest-mismatch', `${descriptor.digest} from ${from}: digest mismatch: the bytes hash to ${actual}; refusing it`);
  return bytes;
}

/**
 * Copies image `name` from `source` into `store`, records it under the
 * same name and unpacks it; answers what a container of it needs, or
 * undefined when the peer does not hold the image. Rejects with what went
 * wrong otherwise (ImageError `digest-mismatch` for a byte that does not
 * match, the peer's or containerd's error for the rest).
 *
 * The lease is made while the peer is asked, and let go without waiting
 * for containerd's answer (what it held is referenced by the image by
 * then, or meant to go): two round trips fewer on the way to ready.
 */
export async function fetchFromPeer(store: ImageStore, name: string, source: PeerImageSource, signal?: AbortSignal): Promise<ResolvedImage | undefined> {
  const leasing = store.client.createLease();
  let lease: string | undefined;
  try {
    const [target, made] = await Promise.all([source.images.describe(name, signal), leasing]);
    lease = made;
    if (target === undefined) return undefined;
    if (!DIGEST.test(target.digest)) throw new ImageError('digest-mismatch', `node ${source.nodeId} names "${target.digest}" as the digest of ${name}, which is not a sha256 digest`);
    const from = `node ${source.nodeId}`;
    const top: Descriptor = { mediaType: target.mediaType, digest: target.digest, size: target.size };
    return await store.storeImage(name, top, {
      lease,
      fetchDocument: async <T>(descriptor: Descriptor) => {
        const bytes = await readDocument(source.images, descriptor, from, signal);
        return { bytes, document: JSON.parse(bytes.toString('utf8')) as T };
      },
      fetchBlob: (descriptor, labels) => store.writeBlob(descriptor, source.images.read(descriptor.digest, signal), { lease: lease!, labels, what: `layer ${descriptor.digest} of ${name} from ${from}`, held: true }),
    });
  } finally {
    if (lease !== undefined) store.client.releaseLease(lease);
    else leasing.then((made) => store.client.releaseLease(made), () => undefined);
  }
}
