/**
 * Blobs read from the files of containerd's content store, for serving
 * them to peers without a content Read stream: containerd keeps each
 * committed blob as `<content root>/blobs/sha256/<hex>`, written once and
 * never changed (a blob is replaced only by deleting it), and an open file
 * stays readable even if the collector removes it meanwhile.
 *
 * Why: a content Read sends every byte through containerd's gRPC server and
 * this process's receive path (HTTP/2 frames, one fresh buffer per message),
 * which cost more than the read itself; a file read goes straight into a
 * buffer reused for the whole blob (bench:executor --mode images).
 *
 * The content root is asked once, of containerd's Introspection service
 * (the content plugin exports it as `root`). The file is used only for a
 * blob the store holds in this client's namespace (checked with Info first:
 * the file system does not know namespaces) and only when it opens here
 * with the size containerd states; otherwise `open` answers undefined and
 * the caller reads through the API (a remote containerd, one whose root
 * this process cannot read, a blob collected in between).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../../../consensus/core/assert.js';
import { isContainerdError, type ContainerdClient } from './client.js';

const DIGEST = /^sha256:([0-9a-f]{64})$/;
const CONTENT_PLUGIN_FILTER = 'type==io.containerd.content.v1';

interface PluginsResponseWire {
  plugins: Array<{ type: string; id: string; exports: Record<string, string> }>;
}

/** What `ContentFiles.open` found. */
export type ContentFileLookup =
  /** The store holds the blob and its file is open here: read `sizeBytes` bytes of `file`, then close it. */
  | { kind: 'file'; file: FileHandle; sizeBytes: number }
  /** The store holds the blob, but not in a file readable here: read it through the API. */
  | { kind: 'api' }
  /** The store does not hold the blob in this namespace. */
  | { kind: 'not-found' };

/** The content store's blob files of one containerd, seen from this process. */
export class ContentFiles {
  /** The content root, once asked: undefined when containerd names none or its files do not open here. */
  private root: Promise<string | undefined> | undefined;

  constructor(private readonly client: ContainerdClient) {}

  /**
   * Finds blob `digest` (`sha256:<64 hex>`, checked by the caller; asserted
   * here, since it becomes a path). Rejects only with containerd's errors
   * from Info; a file that does not open is the `api` answer, not an error.
   */
  async open(digest: string): Promise<ContentFileLookup> {
    const hex = DIGEST.exec(digest)?.[1];
    assert(hex !== undefined, () => `ContentFiles.open wants a sha256 digest, not "${digest}"`);
    let sizeBytes: number;
    try {
      const info = await this.client.unary<{ info: { size: number } }>('content', 'Info', { digest });
      sizeBytes = info.info.size;
    } catch (error) {
      if (isContainerdError(error, 'not-found')) return { kind: 'not-found' };
      throw error;
    }
    const root = await this.contentRoot();
    if (root === undefined) return { kind: 'api' };
    let file: FileHandle;
    try {
      file = await open(join(root, 'blobs', 'sha256', hex), 'r');
    } catch (error) {
      // Gone since Info (collected) or never here (containerd sees another file system): the API knows.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.root = Promise.resolve(undefined);
      return { kind: 'api' };
    }
    const stat = await file.stat().catch(() => undefined);
    if (stat === undefined || !stat.isFile() || stat.size !== sizeBytes) {
      await file.close();
      return { kind: 'api' };
    }
    return { kind: 'file', file, sizeBytes };
  }

  private contentRoot(): Promise<string | undefined> {
    if (this.root === undefined) {
      const asked = this.askRoot();
      this.root = asked;
      // An unanswered question is asked again next time; an answer, even "none", is kept.
      asked.catch(() => {
        if (this.root === asked) this.root = undefined;
      });
    }
    return this.root.catch(() => undefined);
  }

  private async askRoot(): Promise<string | undefined> {
    const response = await this.client.unary<PluginsResponseWire>('introspection', 'Plugins', { filters: [CONTENT_PLUGIN_FILTER] });
    const plugin = response.plugins.find((candidate) => candidate.type === 'io.containerd.content.v1' && candidate.id === 'content');
    const root = plugin?.exports?.root;
    return typeof root === 'string' && root.startsWith('/') ? root : undefined;
  }
}

/**
 * Reads `sizeBytes` bytes of `file` from its start in chunks of at most
 * `chunkBytes`, into one buffer reused for every chunk: a chunk is the
 * caller's only until it asks for the next. Closes the file when done,
 * stopped or failed. Rejects if the file is shorter than `sizeBytes`.
 */
export async function* readFileChunks(file: FileHandle, sizeBytes: number, chunkBytes: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  assert(Number.isInteger(chunkBytes) && chunkBytes > 0, `chunkBytes must be a positive integer, not ${chunkBytes}`);
  try {
    const buffer = Buffer.allocUnsafeSlow(Math.max(1, Math.min(chunkBytes, sizeBytes)));
    let position = 0;
    while (position < sizeBytes) {
      signal?.throwIfAborted();
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, sizeBytes - position), position);
      if (bytesRead === 0) throw new Error(`content file ended at byte ${position} of ${sizeBytes}`);
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}
