import type { Message, NodeId } from './core/types.js';

/** What the transport calls back into the driver. */
export interface TransportHandlers {
  /** A well-formed message from a peer. Malformed ones never get here. */
  onMessage(message: Message): void;
  /**
   * A Snapshot message was delivered whole (`ok`), or its stream failed. Every
   * Snapshot message gets exactly one report: the leader sends nothing more to
   * that follower until it does.
   */
  onSnapshotStatus(to: NodeId, ok: boolean): void;
  /** A peer could not be reached; the leader falls back to probing it. */
  onUnreachable(to: NodeId): void;
}

/**
 * Moves Raft messages between peers. Delivery is best-effort: messages may be
 * dropped, delayed or duplicated, never corrupted or forged into valid ones.
 * `send` never blocks and never throws for network reasons.
 */
export interface Transport {
  start(handlers: TransportHandlers): Promise<void>;
  /** Sets the address (`host:port`) of every peer; peers not named are dropped. */
  setPeers(peers: Record<NodeId, string>): void;
  send(messages: Message[]): void;
  stop(): Promise<void>;
}
