/**
 * Peer addresses: the node records (not left) over the last known ones
 * (node.json's `peers`), this node's own advertised address included. Raft
 * gets them whenever the records or its configuration changed, and node.json
 * keeps them, so a restarted node can answer its leader before it replayed
 * its log.
 */
import type { RaftNode } from '../../consensus/node.js';
import { isMember, members } from '../../consensus/core/config.js';
import type { Status } from '../../consensus/core/types.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { NodeIdentity } from '../node/data-dir.js';
import type { NodeMembership } from './node-membership.js';

/** What the peer book works with. */
export interface PeerBookContext {
  nodeId: string;
  machine: ClusterStateMachine;
  membership: NodeMembership;
  /** This node's advertised peer address, once known. */
  advertisedPeer(): string | undefined;
}

/** See the file comment. */
export class PeerBook {
  /** `peers()`'s last answer and what it was computed from (it runs on every forwarded submit). */
  #cache: { revision: number; identity: NodeIdentity | undefined; advertised: string | undefined; peers: Readonly<Record<string, string>> } | undefined;
  /** The node records' revision and the Raft members Raft's addresses were last refreshed from. */
  #refreshedFrom: string | undefined;

  constructor(private readonly context: PeerBookContext) {}

  /**
   * Peer addresses by node id. Computed again only when the records, the
   * identity or the advertised address changed; callers get a fresh object
   * they may change.
   */
  peers(): Record<string, string> {
    const { machine, membership } = this.context;
    const revision = machine.nodesRevision;
    const identity = membership.identity;
    const advertised = this.context.advertisedPeer();
    const cached = this.#cache;
    if (cached !== undefined && cached.revision === revision && cached.identity === identity && cached.advertised === advertised) return { ...cached.peers };
    const peers: Record<string, string> = { ...(identity?.peers ?? {}) };
    for (const record of machine.nodeDirectory()) {
      if (record.status === 'left') delete peers[record.id];
      else peers[record.id] = record.addresses.peer;
    }
    if (advertised !== undefined) peers[this.context.nodeId] = advertised;
    this.#cache = { revision, identity, advertised, peers: Object.freeze({ ...peers }) };
    return peers;
  }

  /** Refreshes Raft's addresses (and node.json's) when the records or the configuration changed since the last time. */
  maybeRefresh(raft: RaftNode, status: Status): void {
    const from = `${this.context.machine.nodesRevision}|${members(status.config).join(',')}`;
    if (from === this.#refreshedFrom) return;
    this.#refreshedFrom = from;
    this.refresh(raft, status);
  }

  /**
   * Hands Raft the peer addresses. A node whose record says it left keeps
   * its address while it is still a Raft member: the leader's next messages
   * carry the commit index that tells it it left, so it stops on its own.
   */
  private refresh(raft: RaftNode, status: Status): void {
    const peers = this.peers();
    const current = raft.peerAddresses();
    // Keep addresses Raft learned beyond the records (a learner being added).
    const merged = { ...current, ...peers };
    for (const record of this.context.machine.nodeDirectory()) {
      if (record.status !== 'left') continue;
      if (isMember(status.config, record.id)) merged[record.id] ??= record.addresses.peer;
      else delete merged[record.id];
    }
    if (JSON.stringify(merged) !== JSON.stringify(current)) raft.setPeers(merged);
    const identity = this.context.membership.identity;
    if (identity !== undefined && JSON.stringify(peers) !== JSON.stringify(identity.peers)) this.context.membership.saveIdentity({ ...identity, peers });
  }
}
