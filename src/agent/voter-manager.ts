/**
 * The leader's voter management as a loop step: read the Raft status, the
 * node records and gossip's view, ask the pure `VoterPlanner` (voters.ts)
 * for the next change, and make it (a record's status or role, a voter
 * promoted or removed). On other nodes a step only tells the planner it does
 * not lead (it then forgets what it counted).
 *
 * The loop runs a step every `VOTER_INTERVAL_MS`, and at once when the
 * records, the term or the configuration changed (raft-watch.ts pokes it):
 * what time alone changes (graces of seconds or more, gossip's and Raft's
 * liveness) can wait that long.
 */
import type { RaftNode } from '../../consensus/node.js';
import { ConfigChangeError } from '../../consensus/errors.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { Command, CommandResult, NodeRecord } from '../state/types.js';
import type { Clock } from '../node/clock.js';
import { retryUntil } from '../node/retry.js';
import type { GossipView } from '../membership/component.js';
import { VoterPlanner, type VoterAction } from './voters.js';

/** A step at least this often on the leader, ms. */
export const VOTER_INTERVAL_MS = 500;
/** How long one voter change may take, waiting out one in flight, ms. */
export const MEMBERSHIP_CHANGE_TIMEOUT_MS = 10_000;
/** The pause between attempts of a configuration change that found another in flight, ms. */
const CONFIG_RETRY_DELAY_MS = 100;

/** What the manager works with. */
export interface VoterManagerContext {
  nodeId: string;
  /** The Raft node once it runs; undefined before. */
  raft(): RaftNode | undefined;
  machine: ClusterStateMachine;
  /** Gossip's view, when the gossip component runs. */
  gossip(): GossipView | undefined;
  proposeOwn(command: Command): Promise<CommandResult>;
  /** `--voter-grace`, ms. */
  graceMs: number;
  clock: Clock;
  signal: AbortSignal;
  log(line: string): void;
  logOnce(key: string, line: string): void;
}

/**
 * Runs a Raft configuration change until it commits, waiting out one still
 * in flight (retryable ConfigChangeError), until `deadline` (the clock's ms).
 */
export function changeMembership(change: (remainingMs: number) => Promise<unknown>, options: { deadline: number; clock: Clock; signal: AbortSignal }): Promise<unknown> {
  return retryUntil(change, {
    deadline: options.deadline,
    delayMs: CONFIG_RETRY_DELAY_MS,
    retryable: (error) => error instanceof ConfigChangeError && error.retryable,
    clock: options.clock,
    signal: options.signal,
  });
}

/** See the file comment; `step` is the loop's step. */
export class VoterManager {
  readonly #planner: VoterPlanner;
  /** The records as the planner reads them, shared while `nodesRevision` stays. */
  #records: { revision: number; records: Pick<NodeRecord, 'id' | 'status' | 'role'>[] } | undefined;

  constructor(private readonly context: VoterManagerContext) {
    this.#planner = new VoterPlanner({ graceMs: context.graceMs });
  }

  async step(): Promise<void> {
    const raft = this.context.raft();
    if (raft === undefined) return;
    const status = raft.status();
    const isLeader = status.role === 'leader';
    try {
      const progress: Record<string, { match: number; recentActive: boolean }> = {};
      for (const [id, value] of Object.entries(status.progress ?? {})) progress[id] = { match: value.match, recentActive: value.recentActive };
      // Planned on every node: off the leader the planner plans nothing and forgets its counts, so that a leader elected
      // again later starts its own (an unreachability counted in an earlier term would mark a node down before its grace).
      const action = this.#planner.plan({
        self: this.context.nodeId,
        isLeader,
        voters: status.config.voters,
        learners: status.config.learners,
        progress,
        lastIndex: status.lastIndex,
        snapshotIndex: status.firstIndex - 1,
        records: this.records(),
        now: this.context.clock.monotonicMs(),
        gossip: isLeader ? this.context.gossip()?.statuses() : undefined,
      });
      if (action !== undefined) await this.perform(raft, action);
    } catch (error) {
      this.context.logOnce(`membership:${(error as Error).message}`, `a membership change did not go through yet: ${(error as Error).message}`);
    }
  }

  private records(): Pick<NodeRecord, 'id' | 'status' | 'role'>[] {
    const revision = this.context.machine.nodesRevision;
    if (this.#records?.revision !== revision) {
      this.#records = { revision, records: this.context.machine.nodeDirectory().map(({ id, status, role }) => ({ id, status, role })) };
    }
    return this.#records.records;
  }

  private async perform(raft: RaftNode, action: VoterAction): Promise<void> {
    const { clock, signal } = this.context;
    const deadline = clock.now() + MEMBERSHIP_CHANGE_TIMEOUT_MS;
    switch (action.type) {
      case 'set-status':
        this.context.log(`marking ${action.id} ${action.status}: ${action.reason}`);
        await this.context.proposeOwn({ type: 'node.status', id: action.id, status: action.status });
        return;
      case 'set-role':
        await this.context.proposeOwn({ type: 'node.role', id: action.id, role: action.role });
        return;
      case 'remove':
        this.context.log(`removing ${action.id} from the Raft configuration: ${action.reason}`);
        await changeMembership((remainingMs) => raft.removeNode(action.id, { timeoutMs: remainingMs }), { deadline, clock, signal });
        return;
      case 'promote':
        this.context.log(`promoting ${action.id} to voter: ${action.reason}`);
        await changeMembership((remainingMs) => raft.addVoter(action.id, { timeoutMs: remainingMs }), { deadline, clock, signal });
        return;
    }
  }
}
