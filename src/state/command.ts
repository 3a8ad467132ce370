/**
 * What one replicated command is, in one place: its schema (the structural
 * check of untrusted data, naming the field on a refusal), its plan (every
 * check against the state, then a commit that cannot fail and returns the
 * result's value and the history line), who may propose it, and the state
 * version it needs. Each `apply-*.ts` defines the modules of its commands;
 * `commands.ts` lists them in a registry the compiler checks is complete.
 *
 * Pure: no Node API.
 */
import type { Parser } from './schema.js';
import type { ApplyContext, ClusterState, Plan } from './state.js';
import type { CommandOf, CommandType } from './types.js';

/**
 * Who may propose a command. Only `member` is enforced in the state's
 * neighbourhood (the leader's Cluster.Submit takes only member commands from
 * other nodes, src/agent/submit-service.ts); the others say which part of
 * the node proposes it, for readers and for the API's choice of routes.
 *
 * - `user`: a client through the API (a token's role decides further);
 * - `scheduler`: the leader's scheduler;
 * - `leader`: the leading node's own loops (joins, voters, trust, the network, the cluster version);
 * - `member`: any member through the leader's Cluster.Submit, signed with the cluster key.
 */
export type CommandProposer = 'user' | 'scheduler' | 'leader' | 'member';

/** The module of command type `T`. */
export interface CommandModule<T extends CommandType> {
  readonly type: T;
  /**
   * The state version (version.ts) from which every node applies the
   * command as this code does. The leader proposes it only once the cluster
   * version is at least this (`commandVersion`).
   */
  readonly since: number;
  /** The version a particular command needs when it is above `since` (a field added later); absent: `since`. */
  readonly versionOf?: (command: CommandOf<T>) => number;
  readonly proposers: readonly CommandProposer[];
  /** With `member` among the proposers: the field that must name the submitting node itself. */
  readonly memberSelf?: 'id' | 'node';
  /** A successful one changes node records other than their `lastSeenAt` (ClusterStateMachine.nodesRevision moves on). */
  readonly changesNodeRecords?: boolean;
  /** Checks the command's structure; a fresh copy holding only known fields, or the first problem with its field. */
  readonly schema: Parser<CommandOf<T>>;
  /** Checks the command against the state; a refusal, or the commit (see state.ts, Plan). Deterministic. */
  readonly plan: (state: ClusterState, command: CommandOf<T>, context: ApplyContext) => Plan;
}
