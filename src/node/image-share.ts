/**
 * Images one node lends another: the seam between the executor's
 * container runtime (which holds the images) and the peer port (which
 * carries them). The same interface describes this node's images (served
 * to peers) and a peer's (fetched from it), so a runtime fetches from a
 * peer exactly as it would read its own store.
 *
 * Nothing here is trusted: a fetcher checks every byte it reads against
 * the digest it asked for before it keeps it.
 */

/** An image's target (a manifest or an index) as a content descriptor. */
export interface SharedImageTarget {
  readonly mediaType: string;
  /** `sha256:<64 hex>`. */
  readonly digest: string;
  readonly size: number;
}

/** A node's images, readable by name and by digest. */
export interface ImageShare {
  /** The image `name` (normalized reference) holds, or undefined when it is not here. */
  describe(name: string, signal?: AbortSignal): Promise<SharedImageTarget | undefined>;
  /**
   * The bytes of blob `digest`, in order. Rejects (while iterating) with an
   * error whose `code` is `not-found` when the blob is not here. A chunk is
   * the caller's only until it asks for the next one: a share may reuse its
   * memory for the next (copy what must outlive that).
   */
  read(digest: string, signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

/** One member whose images may be fetched. */
export interface PeerImageSource {
  readonly nodeId: string;
  readonly images: ImageShare;
}

/** The other members, as a runtime that misses an image asks them. */
export interface PeerImages {
  /**
   * The members to ask for `name`, in the order to ask them: nodes that run
   * an instance of it first (they surely hold it), then the other live
   * members. Never this node.
   */
  sourcesFor(name: string): PeerImageSource[];
}
