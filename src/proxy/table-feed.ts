/**
 * The route table's feed to proxy workers: which state each worker holds,
 * and from which applied index on a change is in force on all of them.
 * Pure and synchronous: the driver (`workers.ts`) sends and receives the
 * messages; this keeps the books.
 *
 * The main process publishes the replica's records at an applied index
 * (strictly growing); every worker gets every publication in order, rebuilds
 * its table from it and acknowledges that index. A change applied at index
 * i is in force when every worker that may serve has acknowledged an index
 * >= i: before then some worker may still route by the older table. A
 * worker that joins is sent the latest publication, then the order to
 * listen; it counts from that order on (`markServing`). One that leaves no
 * longer holds the others back.
 *
 * Invariants (asserted): a worker acknowledges only what was published to
 * it, never less than it acknowledged before; a worker is known before it
 * acknowledges.
 */
import { assert } from '../../consensus/core/assert.js';

/** A worker's state in the feed. */
interface WorkerBooks {
  /** The highest index it acknowledged; 0: none yet. */
  acknowledged: number;
  /** Whether it serves requests (listens); a joining worker does not until its first acknowledgement. */
  serving: boolean;
}

export class TableFeed {
  private publishedIndex = 0;
  private readonly workers = new Map<number, WorkerBooks>();

  /** The latest index published (0: nothing yet). */
  published(): number {
    return this.publishedIndex;
  }

  /**
   * Records a publication at `index` (the replica's applied index when its
   * records were read). Returns false, recording nothing, when `index` is not
   * above the last one: the same records need not be sent again.
   */
  maybePublish(index: number): boolean {
    assert(Number.isSafeInteger(index) && index >= 0, `TableFeed: index ${index} is not a whole number`);
    if (index <= this.publishedIndex) return false;
    this.publishedIndex = index;
    return true;
  }

  /** A new worker: it is sent the latest publication and serves once it acknowledged it. */
  join(worker: number): void {
    assert(!this.workers.has(worker), `TableFeed: worker ${worker} joined twice`);
    this.workers.set(worker, { acknowledged: 0, serving: false });
  }

  /** A worker is gone (exited, or stopped): it no longer holds the in-force index back. */
  leave(worker: number): void {
    this.workers.delete(worker);
  }

  /** Worker `worker` holds the table of `index` (and routes by it, if it serves). */
  acknowledge(worker: number, index: number): void {
    const books = this.workers.get(worker);
    assert(books !== undefined, `TableFeed: worker ${worker} acknowledged index ${index} without having joined`);
    assert(index <= this.publishedIndex, `TableFeed: worker ${worker} acknowledged index ${index}, above the published ${this.publishedIndex}`);
    assert(index >= books.acknowledged, `TableFeed: worker ${worker} acknowledged index ${index} after ${books.acknowledged}`);
    books.acknowledged = index;
  }

  /**
   * The worker may serve from now on: the driver has sent it the order to
   * listen, after every table it sent it so far. It counts toward the
   * in-force index from this moment, with what it acknowledged (maybe
   * nothing yet), so the index never runs ahead of a worker that serves.
   */
  markServing(worker: number): void {
    const books = this.workers.get(worker);
    assert(books !== undefined, `TableFeed: worker ${worker} cannot serve without having joined`);
    books.serving = true;
  }

  /**
   * The highest index whose change every serving worker holds: the least of
   * their acknowledgements; the published index when none serves (no worker
   * routes by an older table).
   */
  inForce(): number {
    let least = this.publishedIndex;
    for (const books of this.workers.values()) if (books.serving && books.acknowledged < least) least = books.acknowledged;
    return least;
  }

  /** Workers that serve, and those that joined and have not acknowledged yet. */
  counts(): { serving: number; joining: number } {
    let serving = 0;
    for (const books of this.workers.values()) if (books.serving) serving++;
    return { serving, joining: this.workers.size - serving };
  }
}
