/**
 * Images in containerd through its API: blobs into the content store,
 * image records, and layers unpacked into snapshots (one committed snapshot
 * per layer chain, named by its chain id, so an image is unpacked once per
 * node and every container of it shares the layers).
 *
 * Garbage collection: blobs and snapshots are made under a lease, and
 * labelled so containerd's collector keeps what an image reaches once the
 * lease is gone (manifest -> config and layers, config -> top snapshot).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

import { ImageError } from './image-error.js';
import { ContainerdClient, isContainerdError, mapError, type CallOptions } from './client.js';
import { forEachAtOnce, settleAll } from './at-once.js';
import { ContentFiles } from './content-files.js';
import { MessageBuffers } from './message-buffers.js';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MediaType, sha256Digest } from './oci-layout.js';
import { encodeContentCommit, writeContentHeadBytesMax, writeContentHeadInto } from './protobuf-wire.js';
import { GRPC_PREFIX_BYTES, type ContentWriteCall } from './content-write.js';
import { assert } from '../../../consensus/core/assert.js';
import { indexTar, type TarIndexEntry } from './tar.js';

/** Bytes per content write message. */
const WRITE_CHUNK_BYTES = 1024 * 1024;
/** Content write messages sent before their answers are read. */
const WRITES_IN_FLIGHT_MAX = 4;
/** Largest manifest, index or config read into memory. */
const DOCUMENT_BYTES_MAX = 4 * 1024 * 1024;
/** Layers of one image fetched and written at once at most. */
const LAYERS_IN_FLIGHT_MAX = 3;
/** Nested indexes followed at most when resolving a platform. */
const INDEX_DEPTH_MAX = 4;

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string; variant?: string };
}

/** What a container needs of its image. */
export interface ResolvedImage {
  name: string;
  /** Digest of the image record's target (manifest or index). */
  targetDigest: string;
  manifestDigest: string;
  /** Chain id of the top layer: the parent of a container's snapshot. */
  chainId: string;
  config: {
    Cmd?: string[];
    Entrypoint?: string[];
    Env?: string[];
    WorkingDir?: string;
    User?: string;
  };
}

/** An image as `hivemind image ls` shows it. */
export interface ImageSummary {
  name: string;
  digest: string;
  mediaType: string;
  /** Bytes of the manifest's config and layers (compressed, as stored). */
  sizeBytes: number;
  createdAt?: number;
}

export { ImageError } from './image-error.js';

/** Options of an ImageStore. */
export interface ImageStoreOptions {
  client: ContainerdClient;
  /** `overlayfs` (default) or `native`. */
  snapshotter?: string;
  /** The platform picked from an index. */
  platform?: { os: string; architecture: string };
}

/** Chain ids of layers with `diffIds`, bottom first (OCI image spec). */
export function chainIds(diffIds: string[]): string[] {
  const chain: string[] = [];
  for (const diffId of diffIds) {
    const previous = chain[chain.length - 1];
    chain.push(previous === undefined ? diffId : sha256Digest(`${previous} ${diffId}`));
  }
  return chain;
}

function isIndex(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

function isManifest(mediaType: string): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

/**
 * Where a blob's bytes come from: in memory, pieces in order (a stream), or
 * `bytes` bytes of file `path` from byte `start` (read straight into the
 * write messages).
 */
export type BlobSource = Uint8Array | AsyncIterable<Uint8Array> | { path: string; start: number };

/** A message being filled: data goes to `buffer[start, end)`. */
interface OpenChunk {
  buffer: Buffer;
  start: number;
  end: number;
}

/** How `fillChunks` gets message buffers and sends them. */
interface ChunkWriter {
  /** Bytes of data the next message takes (0: the blob is complete). */
  nextChunkBytes(): number;
  take(): Promise<OpenChunk>;
  send(chunk: OpenChunk): void;
}

/**
 * Copies `source` into messages until the writer wants no more; answers
 * how many bytes of the piece at hand were beyond that (more than 0: the
 * source is too long).
 * A source that ends early leaves the last message unsent: the caller sees
 * the short offset.
 */
async function fillChunks(source: BlobSource, writer: ChunkWriter): Promise<{ extraBytes: number }> {
  if (!(source instanceof Uint8Array) && !isAsyncIterable(source)) return fillFromFile(source, writer);
  let open: OpenChunk | undefined;
  let position = 0;
  for await (const piece of source instanceof Uint8Array ? [source] : source) {
    let used = 0;
    while (used < piece.length) {
      if (open === undefined) {
        // Stops reading (and so cancels a stream) at the first byte too many.
        if (writer.nextChunkBytes() === 0) return { extraBytes: piece.length - used };
        open = await writer.take();
        position = open.start;
      }
      const count = Math.min(piece.length - used, open.end - position);
      open.buffer.set(piece.subarray(used, used + count), position);
      position += count;
      used += count;
      if (position === open.end) {
        writer.send(open);
        open = undefined;
      }
    }
  }
  return { extraBytes: 0 };
}

function isAsyncIterable(value: object): value is AsyncIterable<Uint8Array> {
  return Symbol.asyncIterator in value;
}

async function fillFromFile(source: { path: string; start: number }, writer: ChunkWriter): Promise<{ extraBytes: number }> {
  const file = await open(source.path, 'r');
  try {
    let filePosition = source.start;
    while (writer.nextChunkBytes() > 0) {
      const chunk = await writer.take();
      let position = chunk.start;
      while (position < chunk.end) {
        const { bytesRead } = await file.read(chunk.buffer, position, chunk.end - position, filePosition);
        if (bytesRead === 0) return { extraBytes: 0 };
        position += bytesRead;
        filePosition += bytesRead;
      }
      writer.send(chunk);
    }
    return { extraBytes: 0 };
  } finally {
    await file.close();
  }
}



function sizeMismatch(what: string, bytes: number, sizeBytes: number): ImageError {
  return new ImageError('digest-mismatch', `${what}: got ${bytes} bytes, the descriptor says ${sizeBytes}`);
}

/**
 * Reads the COMMIT's answer. The size is checked before the COMMIT, so the
 * one precondition containerd can refuse is the digest: that is
 * `digest-mismatch`; ALREADY_EXISTS (the blob arrived meanwhile) is left to
 * the caller.
 */
async function receiveCommit(call: ContentWriteCall, descriptor: Descriptor, what: string, socketPath: string): Promise<void> {
  try {
    await call.next();
  } catch (error) {
    const mapped = mapError('commit', socketPath, error);
    if (isContainerdError(mapped, 'failed-precondition')) throw new ImageError('digest-mismatch', `${what}: digest mismatch: the content does not hash to ${descriptor.digest} (${mapped.message}); refusing it`);
    throw mapped;
  }
}

/** Images in one containerd namespace. */
export class ImageStore {
  readonly client: ContainerdClient;
  readonly snapshotter: string;
  readonly platform: { os: string; architecture: string };
  /** The content store's blob files, for serving blobs to peers (content-files.ts). */
  readonly contentFiles: ContentFiles;
  private readonly resolved = new Map<string, ResolvedImage>();
  /** Unpacks under way by chain id, so concurrent starts of one image unpack it once. */
  private readonly unpacking = new Map<string, Promise<void>>();

  constructor(options: ImageStoreOptions) {
    this.client = options.client;
    this.snapshotter = options.snapshotter ?? 'overlayfs';
    this.platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
    this.contentFiles = new ContentFiles(options.client);
  }

  /** Whether the content store holds `digest`. */
  async hasBlob(digest: string): Promise<boolean> {
    try {
      await this.client.unary('content', 'Info', { digest });
      return true;
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return false;
      throw error;
    }
  }

  /**
   * Puts blob `digest` under `lease`, then answers whether the store holds
   * it. In that order: a blob that is here but referenced by nothing (left
   * by an import that failed) may be collected at any moment, and once the
   * lease references it, it no longer can; a blob collected before that is
   * simply not here, and gets written again.
   */
  async holdBlob(lease: string, digest: string): Promise<boolean> {
    await this.holdResource(lease, digest);
    return this.hasBlob(digest);
  }

  /** Puts blob `digest` under `lease`, whether the store holds it yet or not. */
  private async holdResource(lease: string, digest: string): Promise<void> {
    await this.client.unary('leases', 'AddResource', { id: lease, resource: { id: digest, type: 'content' } });
  }

  /**
   * Writes a blob to the content store (nothing if it is there already).
   * `source` gives the bytes in order. containerd hashes them as they arrive
   * and refuses, at commit, a blob that does not hash to `descriptor.digest`
   * (the local content store's writer checks the expected digest); that and
   * a size other than `descriptor.size` reject with ImageError
   * `digest-mismatch`, and nothing is committed.
   *
   * The bytes go to containerd in WRITE_CHUNK_BYTES messages encoded into a
   * few reused buffers (message-buffers.ts); a file source is read straight
   * into them. No STAT opens the write: the first WRITE carries the total
   * and the expected digest. A blob in memory that fits one message (a
   * manifest, a config) goes in one COMMIT with its data: one round trip.
   * `held`: the caller has put the blob under `lease` (`holdBlob`, or
   * `leases.AddResource` for a blob in memory), so that is not done again.
   * Otherwise the blob goes under the lease first; a blob in memory that
   * fits one message is then committed without asking whether it is there
   * (containerd answers ALREADY_EXISTS, which is success: the lease holds
   * it), a larger one only when `holdBlob` finds it absent.
   * `labels` may be a promise (the layers' labels name their diff ids,
   * which the image config holds): the bytes go before it settles, the
   * COMMIT after; a rejection aborts the write.
   */
  async writeBlob(descriptor: Descriptor, source: BlobSource, options: { lease: string; labels?: Labels | Promise<Labels>; what?: string; held?: boolean }): Promise<void> {
    const whole = source instanceof Uint8Array && source.length <= WRITE_CHUNK_BYTES;
    if (!options.held) {
      if (whole) await this.holdResource(options.lease, descriptor.digest);
      else if (await this.holdBlob(options.lease, descriptor.digest)) return;
    }
    const what = options.what ?? `blob ${descriptor.digest}`;
    const ref = `hivemind-${descriptor.digest.replace(':', '-')}-${randomBytes(4).toString('hex')}`;
    const call = this.client.contentWrite({ lease: options.lease });
    try {
      if (whole) {
        await this.commitWhole(call, descriptor, source, { ref, what, labels: options.labels ?? {} });
      } else {
        await this.writeChunks(call, descriptor, source, { ref, what, labels: options.labels ?? {} });
      }
      call.end();
    } catch (error) {
      call.cancel();
      await this.client.unary('content', 'Abort', { ref }).catch(() => undefined);
      if (error instanceof ImageError) throw error;
      const mapped = mapError(`content write of ${what}`, this.client.socketPath, error);
      if (isContainerdError(mapped, 'already-exists')) return;
      throw mapped;
    }
  }

  /** The whole of a small blob in one COMMIT message. */
  private async commitWhole(call: ContentWriteCall, descriptor: Descriptor, bytes: Uint8Array, write: { ref: string; what: string; labels: Labels | Promise<Labels> }): Promise<void> {
    if (bytes.length !== descriptor.size) throw sizeMismatch(write.what, bytes.length, descriptor.size);
    const commit = encodeContentCommit({ ref: write.ref, offset: 0, total: descriptor.size, expected: descriptor.digest, labels: await write.labels, data: bytes }, GRPC_PREFIX_BYTES);
    call.send(commit, commit.length);
    await receiveCommit(call, descriptor, write.what, this.client.socketPath);
  }

  /** A blob in WRITE messages, up to WRITES_IN_FLIGHT_MAX of them unanswered, then a COMMIT. */
  private async writeChunks(call: ContentWriteCall, descriptor: Descriptor, source: BlobSource, write: { ref: string; what: string; labels: Labels | Promise<Labels> }): Promise<void> {
    const { ref, what } = write;
    // Requests are answered in order, one answer each; up to WRITES_IN_FLIGHT_MAX writes go out before
    // their answers are read, so a blob is not held to one round trip to containerd per chunk. A WRITE's
    // buffer (gRPC's prefix, the head, the data) is free again once its answer is in: containerd has
    // read every byte of it by then.
    const sent: Buffer[] = [];
    const buffers = new MessageBuffers(GRPC_PREFIX_BYTES + writeContentHeadBytesMax(ref, descriptor.digest) + Math.min(WRITE_CHUNK_BYTES, Math.max(descriptor.size, 1)), WRITES_IN_FLIGHT_MAX);
    const send = (buffer: Buffer, end: number): void => {
      call.send(buffer, end);
      sent.push(buffer);
    };
    const receive = async (): Promise<void> => {
      await call.next();
      const buffer = sent.shift();
      assert(buffer !== undefined, 'a content write answer came for no message sent');
      buffers.give(buffer);
    };
    const takeBuffer = async (): Promise<Buffer> => {
      for (;;) {
        const buffer = buffers.takeNow();
        if (buffer !== undefined) return buffer;
        await receive();
      }
    };
    let offset = 0;
    const writer: ChunkWriter = {
      nextChunkBytes: () => Math.min(WRITE_CHUNK_BYTES, descriptor.size - offset),
      take: async () => {
        const buffer = await takeBuffer();
        const dataBytes = Math.min(WRITE_CHUNK_BYTES, descriptor.size - offset);
        const opening = offset === 0 ? { total: descriptor.size, expected: descriptor.digest } : {};
        const start = GRPC_PREFIX_BYTES + writeContentHeadInto(buffer.subarray(GRPC_PREFIX_BYTES), { ref, offset, dataBytes, ...opening });
        return { buffer, start, end: start + dataBytes };
      },
      send: (chunk) => {
        send(chunk.buffer, chunk.end);
        offset += chunk.end - chunk.start;
      },
    };
    const filled = await fillChunks(source, writer);
    if (filled.extraBytes > 0) throw new ImageError('digest-mismatch', `${what} is larger than its descriptor's ${descriptor.size} bytes`);
    while (sent.length > 0) await receive();
    if (offset !== descriptor.size) throw sizeMismatch(what, offset, descriptor.size);
    // COMMIT carries the current offset: containerd truncates the write back to an offset of 0.
    const commit = encodeContentCommit({ ref, offset, total: descriptor.size, expected: descriptor.digest, labels: await write.labels }, GRPC_PREFIX_BYTES);
    call.send(commit, commit.length);
    await receiveCommit(call, descriptor, what, this.client.socketPath);
  }

  /** Reads a whole blob (manifests, indexes, configs); refuses blobs over `maxBytes`. */
  async readBlob(digest: string, maxBytes = DOCUMENT_BYTES_MAX): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    const stream = this.client.serverStream<{ offset: number; data: Buffer }>('content', 'Read', { digest, offset: 0, size: 0 });
    try {
      for await (const message of stream) {
        total += message.data.length;
        if (total > maxBytes) throw new ImageError('bad-archive', `blob ${digest} is larger than ${maxBytes} bytes`);
        chunks.push(Buffer.from(message.data));
      }
    } catch (error) {
      stream.cancel();
      if (error instanceof ImageError) throw error;
      throw mapError(`content read of ${digest}`, this.client.socketPath, error);
    }
    return Buffer.concat(chunks);
  }

  private async readJson<T>(digest: string): Promise<T> {
    const bytes = await this.readBlob(digest);
    if (sha256Digest(bytes) !== digest) throw new ImageError('digest-mismatch', `blob ${digest} in the content store does not match its digest`);
    return JSON.parse(bytes.toString('utf8')) as T;
  }

  /** Creates or replaces the image record `name` -> `target`. */
  async putImage(name: string, target: Descriptor, lease?: string): Promise<void> {
    const image = { name, labels: {}, target: { media_type: target.mediaType, digest: target.digest, size: target.size, annotations: {} } };
    const options: CallOptions = lease !== undefined ? { lease } : {};
    try {
      await this.client.unary('images', 'Create', { image }, options);
    } catch (error) {
      if (!isContainerdError(error, 'already-exists')) throw error;
      await this.client.unary('images', 'Update', { image }, options);
    }
    this.resolved.delete(name);
  }

  /** The image record's target; ImageError `image-not-found` if there is none. */
  async getImage(name: string): Promise<Descriptor & { createdAt?: number }> {
    try {
      const response = await this.client.unary<{ image: { target: { media_type: string; digest: string; size: number } } }>('images', 'Get', { name });
      return { mediaType: response.image.target.media_type, digest: response.image.target.digest, size: response.image.target.size };
    } catch (error) {
      if (isContainerdError(error, 'not-found')) throw new ImageError('image-not-found', `image "${name}" is not on this node; import it (hivemind image import) or pull it (hivemind image pull)`);
      throw error;
    }
  }

  /** Every image of the namespace. */
  async list(): Promise<ImageSummary[]> {
    const response = await this.client.unary<{ images: Array<{ name: string; target: { media_type: string; digest: string; size: number }; created_at?: { seconds: number } }> }>('images', 'List', { filters: [] });
    const summaries: ImageSummary[] = [];
    for (const image of response.images) {
      let sizeBytes = image.target.size;
      try {
        const manifest = await this.manifestFor({ mediaType: image.target.media_type, digest: image.target.digest, size: image.target.size }, 0);
        sizeBytes = manifest.manifest.config.size + manifest.manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
      } catch {
        // A record whose blobs are gone still lists, with its target's size.
      }
      const summary: ImageSummary = { name: image.name, digest: image.target.digest, mediaType: image.target.media_type, sizeBytes };
      if (image.created_at?.seconds) summary.createdAt = image.created_at.seconds * 1000;
      summaries.push(summary);
    }
    return summaries;
  }

  /** Deletes an image record (its blobs and snapshots go with the next garbage collection). */
  async remove(name: string): Promise<void> {
    try {
      await this.client.unary('images', 'Delete', { name, sync: false });
    } catch (error) {
      if (!isContainerdError(error, 'not-found')) throw error;
    }
    this.resolved.delete(name);
  }

  /** Picks this node's platform from an index. */
  pickPlatform(manifests: Descriptor[], where: string): Descriptor {
    const candidates = manifests.filter((entry) => isManifest(entry.mediaType) || isIndex(entry.mediaType));
    const match =
      candidates.find((entry) => entry.platform?.os === this.platform.os && entry.platform?.architecture === this.platform.architecture) ??
      (candidates.length === 1 && candidates[0]!.platform === undefined ? candidates[0] : undefined);
    if (match === undefined) {
      const offered = candidates.map((entry) => `${entry.platform?.os ?? '?'}/${entry.platform?.architecture ?? '?'}`).join(', ') || 'none';
      throw new ImageError('no-platform', `${where} has no ${this.platform.os}/${this.platform.architecture} image (offers ${offered})`);
    }
    return match;
  }

  private async manifestFor(target: Descriptor, depth: number): Promise<{ descriptor: Descriptor; manifest: ManifestDocument }> {
    if (isManifest(target.mediaType)) return { descriptor: target, manifest: await this.readJson<ManifestDocument>(target.digest) };
    if (!isIndex(target.mediaType)) throw new ImageError('unsupported-media-type', `image target ${target.digest} has media type ${target.mediaType}, which is neither a manifest nor an index`);
    if (depth >= INDEX_DEPTH_MAX) throw new ImageError('bad-archive', `image index ${target.digest} nests deeper than ${INDEX_DEPTH_MAX}`);
    const index = await this.readJson<{ manifests: Descriptor[] }>(target.digest);
    return this.manifestFor(this.pickPlatform(index.manifests ?? [], `index ${target.digest}`), depth + 1);
  }

  /**
   * What a container of `name` needs: its config and top chain id, with
   * the layers unpacked into snapshots (done once per node; concurrent calls
   * share the work).
   */
  async resolve(name: string): Promise<ResolvedImage> {
    const target = await this.getImage(name);
    const cached = this.resolved.get(name);
    if (cached !== undefined && cached.targetDigest === target.digest) return cached;
    const { descriptor, manifest } = await this.manifestFor(target, 0);
    const config = await this.readJson<ImageConfigDocument>(manifest.config.digest);
    return this.resolveFrom(name, target.digest, { manifestDescriptor: descriptor, manifest, config });
  }

  private async resolveFrom(name: string, targetDigest: string, stored: StoredTree): Promise<ResolvedImage> {
    const chain = checkedChain(name, stored);
    await this.unpack(stored.manifest.layers, chain);
    return this.remember(name, targetDigest, stored, chain);
  }

  private remember(name: string, targetDigest: string, stored: StoredTree, chain: string[]): ResolvedImage {
    const resolved: ResolvedImage = { name, targetDigest, manifestDigest: stored.manifestDescriptor.digest, chainId: chain[chain.length - 1]!, config: stored.config.config ?? {} };
    this.resolved.set(name, resolved);
    return resolved;
  }

  private async snapshotExists(key: string): Promise<boolean> {
    try {
      await this.client.unary('snapshots', 'Stat', { snapshotter: this.snapshotter, key });
      return true;
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return false;
      throw error;
    }
  }

  /**
   * Unpacks `layers` (chain ids `chain`) unless the top snapshot exists.
   * `landing`: while the layers are being stored, under the store's lease
   * (held until the snapshots are referenced), with a promise per layer
   * that settles when it is in the content store; otherwise under a lease
   * of its own.
   */
  private async unpack(layers: Descriptor[], chain: string[], landing?: { lease: string; landed: Promise<void>[] }): Promise<void> {
    const top = chain[chain.length - 1]!;
    if (await this.snapshotExists(top)) return;
    let running = this.unpacking.get(top);
    if (running === undefined) {
      const unpacked = landing !== undefined ? this.unpackUnder(landing.lease, layers, chain, landing.landed) : this.client.withLease((own) => this.unpackUnder(own, layers, chain));
      running = unpacked.finally(() => this.unpacking.delete(top));
      this.unpacking.set(top, running);
    }
    await running;
  }

  /**
   * Unpacks the layers whose snapshots are missing; the top one is known to
   * be (`unpack` just asked). A layer's snapshot is prepared before its
   * bytes are in (`landed`, when given), and applied once they are.
   */
  private async unpackUnder(lease: string, layers: Descriptor[], chain: string[], landed?: Promise<void>[]): Promise<void> {
    for (let index = 0; index < chain.length; index += 1) {
      const chainId = chain[index]!;
      // One made meanwhile by someone else is ALREADY_EXISTS at Commit, below.
      if (index < chain.length - 1 && (await this.snapshotExists(chainId))) continue;
      const layer = layers[index]!;
      const key = `extract-${randomBytes(6).toString('hex')}-${chainId}`;
      const parent = index === 0 ? '' : chain[index - 1]!;
      const prepared = await this.client.unary<{ mounts: object[] }>('snapshots', 'Prepare', { snapshotter: this.snapshotter, key, parent, labels: {} }, { lease });
      try {
        await landed?.[index];
        await this.client.unary('diff', 'Apply', { diff: { media_type: layer.mediaType, digest: layer.digest, size: layer.size, annotations: {} }, mounts: prepared.mounts, payloads: {} }, { lease, timeoutMs: 600_000 });
        await this.client.unary('snapshots', 'Commit', { snapshotter: this.snapshotter, name: chainId, key, labels: {} }, { lease });
      } catch (error) {
        await this.client.unary('snapshots', 'Remove', { snapshotter: this.snapshotter, key }, { lease }).catch(() => undefined);
        if (isContainerdError(error, 'already-exists')) continue;
        throw error;
      }
    }
  }

  /**
   * Imports an OCI image layout archive (a tar file, not compressed):
   * every blob the archive's index reaches goes to the content store
   * (digests checked), each manifest becomes an image record named by
   * `name`, or by its `io.containerd.image.name` / `ref.name` annotation,
   * and is unpacked. Answers the names made.
   */
  async importArchive(path: string, options: { name?: string } = {}): Promise<string[]> {
    let entries: TarIndexEntry[];
    try {
      entries = await indexTar(path);
    } catch (error) {
      throw new ImageError('bad-archive', `cannot read the image archive: ${(error as Error).message}`);
    }
    const files = new Map(entries.filter((entry) => entry.type === 'file').map((entry) => [entry.name, entry]));
    const layoutFile = files.get('oci-layout');
    const indexFile = files.get('index.json');
    if (layoutFile === undefined || indexFile === undefined) throw new ImageError('bad-archive', 'the archive is not an OCI image layout (no oci-layout or index.json at its root); build one with `docker save` of an OCI exporter, `skopeo copy oci-archive:` or buildah');
    const readEntry = async (entry: TarIndexEntry): Promise<Buffer> => {
      if (entry.size > DOCUMENT_BYTES_MAX) throw new ImageError('bad-archive', `${entry.name} is larger than ${DOCUMENT_BYTES_MAX} bytes`);
      const chunks: Buffer[] = [];
      for await (const chunk of createReadStream(path, { start: entry.offset, end: entry.offset + entry.size - 1 })) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    };
    const index = JSON.parse((await readEntry(indexFile)).toString('utf8')) as { manifests?: Descriptor[] };
    const blobEntry = (descriptor: Descriptor): TarIndexEntry => {
      const [algorithm, hex] = descriptor.digest.split(':');
      const entry = files.get(`blobs/${algorithm}/${hex}`);
      if (algorithm !== 'sha256' || entry === undefined) throw new ImageError('bad-archive', `the archive lacks blob ${descriptor.digest}`);
      return entry;
    };
    const readDocument = async <T>(descriptor: Descriptor): Promise<{ bytes: Buffer; document: T }> => {
      const bytes = await readEntry(blobEntry(descriptor));
      if (sha256Digest(bytes) !== descriptor.digest) throw new ImageError('digest-mismatch', `blob ${descriptor.digest} in the archive does not match its digest`);
      return { bytes, document: JSON.parse(bytes.toString('utf8')) as T };
    };
    const manifests = index.manifests ?? [];
    if (manifests.length === 0) throw new ImageError('bad-archive', 'the archive index.json lists no images');
    if (options.name !== undefined && manifests.length > 1) throw new ImageError('bad-archive', `the archive holds ${manifests.length} images; --name names one image only`);
    const names: string[] = [];
    await this.client.withLease(async (lease) => {
      for (const top of manifests) {
        const name = options.name ?? top.annotations?.[ANNOTATION_IMAGE_NAME] ?? top.annotations?.[ANNOTATION_REF_NAME];
        if (name === undefined) throw new ImageError('bad-archive', `image ${top.digest} in the archive has no name annotation; give one with --name`);
        const writeFromArchive = async (descriptor: Descriptor, labels: Promise<Labels>): Promise<void> => {
          const entry = blobEntry(descriptor);
          if (entry.size !== descriptor.size) throw new ImageError('bad-archive', `blob ${descriptor.digest} in the archive has ${entry.size} bytes, its descriptor says ${descriptor.size}`);
          return this.writeBlob(descriptor, { path, start: entry.offset }, { lease, labels, what: `blob ${descriptor.digest}`, held: true });
        };
        await this.storeImage(name, top, { lease, fetchDocument: readDocument, fetchBlob: writeFromArchive });
        names.push(name);
      }
    });
    return names;
  }

  /**
   * Stores the tree under `top` (an index or a manifest) from `source`,
   * records it as image `name` and unpacks its layers for this platform;
   * answers what a container of it needs. Everything is done under
   * `source.lease`, which must live until this answers.
   *
   * Each step starts as soon as what it needs is in: once the manifest is
   * checked, its layers (at most LAYERS_IN_FLIGHT_MAX at once; a layer the
   * lease already holds is not fetched) and its config; each layer's unpack
   * once the config names the chain, its snapshot prepared at once and
   * applied when the layer is in the content store and the one below it
   * unpacked; the manifest and index, with the labels that keep what they
   * reach, once everything they reach is stored; the image record once its
   * target is. On a failure, waits for the work under way, then rejects
   * with the first failure.
   */
  async storeImage(name: string, top: Descriptor, source: TreeSource): Promise<ResolvedImage> {
    const { stored, chain, unpacked } = await this.storeTree(name, top, source);
    let ids: string[];
    try {
      // No record of an image whose config and manifest disagree.
      ids = await chain;
    } catch (error) {
      await unpacked.catch(() => undefined);
      throw error;
    }
    await settleAll([this.putImage(name, top, source.lease), unpacked]);
    return this.remember(name, top.digest, stored, ids);
  }

  /**
   * `storeImage` but the record: answers once the blobs are stored, with
   * the unpack (and the chain it unpacks) still under way; the caller must
   * wait for it. Neither promise is left unhandled.
   */
  private async storeTree(name: string, top: Descriptor, source: TreeSource): Promise<{ stored: StoredTree; chain: Promise<string[]>; unpacked: Promise<void> }> {
    if (isIndex(top.mediaType)) {
      const { bytes, document } = await source.fetchDocument<{ manifests?: Descriptor[] }>(top);
      const picked = this.pickPlatform(document.manifests ?? [], `index ${top.digest}`);
      const below = await this.storeTree(name, picked, source);
      try {
        await this.writeBlob(top, bytes, { lease: source.lease, labels: { 'containerd.io/gc.ref.content.m.0': picked.digest }, what: `index ${top.digest}` });
      } catch (error) {
        await below.unpacked.catch(() => undefined);
        throw error;
      }
      return below;
    }
    if (!isManifest(top.mediaType)) throw new ImageError('unsupported-media-type', `${top.digest} has media type ${top.mediaType}, which is neither a manifest nor an index`);
    const lease = source.lease;
    const { bytes, document } = await source.fetchDocument<ManifestDocument>(top);
    const layers = document.layers ?? [];
    const config = handled(source.fetchDocument<ImageConfigDocument>(document.config));
    const diffIds = handled(config.then(({ document: configDocument }) => configDocument.rootfs?.diff_ids ?? []));
    const chain = handled(config.then(({ document: configDocument }) => checkedChain(name, { manifestDescriptor: top, manifest: document, config: configDocument })));
    const landed = layers.map(() => settlement());
    const unpacked = handled(chain.then((ids) => this.unpack(layers, ids, { lease, landed: landed.map((layer) => layer.promise) })));
    const configLabels = async (): Promise<Labels> => {
      const ids = chainIds(await diffIds);
      return ids.length > 0 ? { [`containerd.io/gc.ref.snapshot.${this.snapshotter}`]: ids[ids.length - 1]! } : {};
    };
    const stores = settleAll([
      config.then((fetched) => this.writeBlob(document.config, fetched.bytes, { lease, labels: configLabels(), what: `config ${document.config.digest}` })),
      forEachAtOnce(layers, LAYERS_IN_FLIGHT_MAX, async (layer, position) => {
        try {
          const labels = handled(diffIds.then((ids): Labels => (ids[position] !== undefined ? { 'containerd.io/uncompressed': ids[position]! } : {})));
          if (!(await this.holdBlob(lease, layer.digest))) await source.fetchBlob(layer, labels);
          landed[position]!.resolve();
        } catch (error) {
          landed[position]!.reject(error);
          throw error;
        }
      }),
      // The manifest goes under the lease now, so its write below is one round trip.
      this.holdResource(lease, top.digest),
    ]);
    try {
      await stores;
      const manifestLabels: Labels = { 'containerd.io/gc.ref.content.config': document.config.digest };
      layers.forEach((layer, position) => (manifestLabels[`containerd.io/gc.ref.content.l.${position}`] = layer.digest));
      await this.writeBlob(top, bytes, { lease, labels: manifestLabels, what: `manifest ${top.digest}`, held: true });
    } catch (error) {
      for (const layer of landed) layer.reject(new ImageError('bad-archive', `${top.digest}: not every layer was stored`));
      await unpacked.catch(() => undefined);
      throw error;
    }
    return { stored: { manifestDescriptor: top, manifest: document, config: (await config).document }, chain, unpacked };
  }
}

/** Labels of a content blob. */
export type Labels = Record<string, string>;

/** `promise`, marked handled: a rejection that no one awaits yet is no unhandled rejection. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** A promise and its settle functions; settling it again does nothing. */
function settlement(): { promise: Promise<void>; resolve(): void; reject(error: unknown): void } {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = handled(new Promise<void>((done, fail) => ((resolve = done), (reject = fail))));
  return { promise, resolve, reject };
}

/** The chain ids of a stored image's layers, bottom first; refuses a config and manifest that disagree. */
function checkedChain(name: string, stored: StoredTree): string[] {
  const diffIds = stored.config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== stored.manifest.layers.length) throw new ImageError('bad-archive', `image "${name}": its config lists ${diffIds.length} layers, its manifest ${stored.manifest.layers.length}`);
  if (diffIds.length === 0) throw new ImageError('bad-archive', `image "${name}" has no layers`);
  return chainIds(diffIds);
}

/** The documents of an image as stored, for this node's platform. */
export interface StoredTree {
  manifestDescriptor: Descriptor;
  manifest: ManifestDocument;
  config: ImageConfigDocument;
}

/** Where `storeImage` gets an image's pieces (an archive, a registry, a peer). */
export interface TreeSource {
  lease: string;
  /** The document's bytes, checked against its digest, and parsed. */
  fetchDocument<T>(descriptor: Descriptor): Promise<{ bytes: Buffer; document: T }>;
  /**
   * Writes layer `descriptor` to the content store with `labels`, through
   * `ImageStore.writeBlob` with `held: true`: `storeImage` calls it only for
   * a layer it has just put under the lease and found absent. `labels`
   * settles when the image config is in, possibly after the bytes started.
   */
  fetchBlob(descriptor: Descriptor, labels: Promise<Labels>): Promise<void>;
}

/** An image manifest (OCI or Docker schema 2). */
export interface ManifestDocument {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The parts of an image config Hivemind reads. */
export interface ImageConfigDocument {
  architecture?: string;
  os?: string;
  config?: ResolvedImage['config'];
  rootfs?: { type: string; diff_ids: string[] };
}


