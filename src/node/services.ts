/**
 * What the agent hands to the components that run beside Raft on every node
 * (the executor, the scheduler, gossip): the local replica to read, a way to
 * propose commands from any node, logging, metrics and the stop signal.
 *
 * A component is built by a `ComponentFactory` listed in `src/agent/components.ts`,
 * bound (sockets) before the node registers its addresses, started once the
 * node serves, and stopped, in reverse order, before Raft stops.
 */
import type { Registry } from 'prom-client';
import type { Status } from '../../consensus/core/types.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { Command, CommandResult } from '../state/types.js';
import type { AgentConfig } from './config.js';
import type { StateEvent, StateListener } from './replicated-state.js';
import type { PeerTls } from './peer-tls.js';
import type { PeerImages } from './image-share.js';
import type { NodeCapabilities } from './capabilities.js';
import type { LogLevel } from './log-level.js';

/**
 * Whether `event` is the apply of a heartbeat, which moves only a node
 * record's `lastSeenAt`: nothing the scheduler plans from or an executor
 * runs from, so those react to every other event and skip these.
 */
export function isHeartbeatApply(event: StateEvent): boolean {
  return event.type === 'applied' && event.commandType === 'node.heartbeat';
}

export interface NodeServices {
  readonly nodeId: string;
  readonly config: AgentConfig;
  /** The agent's data directory; a component keeps its files under a folder of its own there. */
  readonly dataDir: string;
  /** The local replica. Read it between applies only (one thread: a synchronous read is consistent). */
  readonly machine: ClusterStateMachine;
  /** Hears every apply and restore, on the Raft loop: be quick, never throw. Returns the remover. */
  listen(listener: StateListener): () => void;
  /** This node's Raft view (role, leader, term, configuration). */
  raftStatus(): Status;
  isLeader(): boolean;
  /**
   * Proposes a command as this node (actor = node id): directly on the
   * leader, else through the leader's cluster service, authenticated with the
   * cluster key. Resolves with the result once applied on the leader; rejects
   * (NotLeaderError, TimeoutError, ProposalLostError, or an Error saying why)
   * when it could not be proposed: the caller retries later.
   */
  submit(command: Command, options?: { timeoutMs?: number }): Promise<CommandResult>;
  /** The advertised addresses of this node (api, peer, gossip). */
  addresses(): { api: string; peer: string; gossip: string };
  /**
   * The ports the components bound (`NodeComponent.bind`), once every
   * component is bound (before: empty). A port a component could not bind is
   * absent: the DNS port when another process holds it, say.
   */
  boundPorts(): BoundPorts;
  /** Logs `line` as `component`'s, at `level` (default info; src/agent/agent-log.ts). */
  log(component: string, line: string, level?: LogLevel): void;
  /** The registry behind `GET /metrics`; name metrics `hivemind_<component>_...`. */
  readonly registry: Registry;
  /** Aborted when the agent stops. */
  readonly signal: AbortSignal;
  /** The node's TLS toward its peers (certificates of the cluster CA), for components that open connections of their own. */
  readonly peerTls: PeerTls;
  /** The other members' images, for a runtime that misses one (absent: fetch from registries only). */
  readonly peerImages?: PeerImages;
}

/** Ports bound by components: the real ones when the configured port is 0. */
export interface BoundPorts {
  /** Gossip's UDP port (advertised to peers). */
  gossip?: number;
  /** The DNS server's port on the bind address (process apps get it in `HIVEMIND_DNS`). */
  dns?: number;
}

/** Something that runs beside Raft on every node. */
export interface NodeComponent {
  /** Short and unique: `executor`, `scheduler`, `gossip`. The API finds components by it. */
  readonly name: string;
  /**
   * Optional: binds sockets before the node computes and registers its
   * addresses. Returns the ports it bound (a configured port of 0 becomes the
   * real one, which is advertised or handed to workloads).
   */
  bind?(): Promise<BoundPorts>;
  /** Called once the node serves its API. */
  start(): Promise<void>;
  /**
   * Optional: the node left its cluster for good (not a restart). Releases
   * what the component runs on the host for the cluster (the executor stops
   * its workloads). Called before stop(); must not throw.
   */
  leave?(): Promise<void>;
  /** Idempotent; must not throw. */
  stop(): Promise<void>;
  /** Optional: what it offers the node's API and peers (logs, volumes, images; see capabilities.ts). */
  readonly capabilities?: NodeCapabilities;
}

export type ComponentFactory = (services: NodeServices) => NodeComponent;
