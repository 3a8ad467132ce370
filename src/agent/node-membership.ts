/**
 * What this node knows of its own membership: its identity (node.json:
 * origin, joined index, last known peers, left) and the cluster key, in
 * memory and, once saved, in the data directory. One holder, so that every
 * part of the agent reads the same identity the last writer saved.
 */
import type { DataDir, NodeIdentity } from '../node/data-dir.js';

/** See the file comment. */
export class NodeMembership {
  #identity: NodeIdentity | undefined;
  #clusterKey: Uint8Array | undefined;

  constructor(private readonly dataDir: DataDir) {}

  /** The identity in force; undefined before the start chose one. */
  get identity(): NodeIdentity | undefined {
    return this.#identity;
  }

  /** The cluster key; undefined until bootstrap made it, the disk held it or a join brought it. */
  get clusterKey(): Uint8Array | undefined {
    return this.#clusterKey;
  }

  /** The registration index this node's membership began at (0 when unknown: any `left` counts). */
  get joinedIndex(): number {
    return this.#identity?.joinedIndex ?? 0;
  }

  /** Takes an identity and key in memory only (the start writes them once it got far enough). */
  adopt(identity: NodeIdentity, clusterKey: Uint8Array | undefined): void {
    this.#identity = identity;
    this.#clusterKey = clusterKey;
  }

  /** Puts `identity` in force and writes node.json (atomically). */
  saveIdentity(identity: NodeIdentity): void {
    this.#identity = identity;
    this.dataDir.writeIdentity(identity);
  }

  /** Puts `clusterKey` in force and writes cluster.key (atomically). */
  saveClusterKey(clusterKey: Uint8Array): void {
    this.#clusterKey = clusterKey;
    this.dataDir.writeClusterKey(clusterKey);
  }

  /** Marks node.json `left`: a restart refuses to serve, `hivemind join` starts anew. */
  markLeft(): void {
    if (this.#identity !== undefined) this.saveIdentity({ ...this.#identity, left: true });
  }
}
