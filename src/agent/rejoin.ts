/**
 * Getting back in: a member that has known no leader for long, has not
 * heard from its leader (a learner never campaigns, so this is how it
 * notices), or finds itself outside the Raft configuration, asks to be let
 * in again with a Join marked `rejoin` (it may have been removed while
 * down). Harmless when it is in: the leader only refreshes its record. A
 * refusal saying the node left ends it. The same Join refreshes the record
 * of a follower whose addresses changed (self-registration.ts).
 *
 * `outsideReason` is the pure part; `Rejoiner.step` is a loop step.
 */
import type { RaftNode } from '../../consensus/node.js';
import { isMember } from '../../consensus/core/config.js';
import type { Status } from '../../consensus/core/types.js';
import type { Clock } from '../node/clock.js';
import type { DataDir } from '../node/data-dir.js';
import { grpc, type ClusterClients } from './cluster-service.js';
import { describeJoinFailure, sendJoin, type JoinerIdentity } from './joining.js';
import type { NodeMembership } from './node-membership.js';
import type { NodeTrust } from './trust.js';

/** How often the loop looks, ms. */
export const REJOIN_CHECK_INTERVAL_MS = 1000;
/** Between two rejoins, at least, ms. */
export const REJOIN_INTERVAL_MS = 5000;
/**
 * One rejoin call: the leader registers the node and may add it to Raft as
 * a learner before it answers, which under faults takes seconds; a call cut
 * short is admitted all the same but its answer (the node's new certificate)
 * is lost, and the next try starts over.
 */
const REJOIN_CALL_TIMEOUT_MS = 15_000;
/**
 * A follower or learner that has not heard from its leader for this long
 * counts as outside the cluster. A voter campaigns long before; a learner
 * never does, and a learner removed while the message that said so was lost
 * would otherwise wait for its leader forever.
 */
export const LEADER_SILENCE_MS = 2000;

/** Why this node counts as outside the cluster, or undefined when it is in (or leads). */
export function outsideReason(status: Status, self: string, tickMs: number): string | undefined {
  if (status.role === 'leader') return undefined;
  const silent = status.silentTicks * tickMs >= LEADER_SILENCE_MS;
  if (status.leader === '' || silent) return 'no leader heard';
  if (!isMember(status.config, self)) return 'not in the Raft configuration';
  return undefined;
}

/** How long a node stays outside before it asks to rejoin, ms: 5 s, or 100 ticks when ticks are long. */
export function rejoinAfterMs(tickMs: number): number {
  return Math.max(5000, 100 * tickMs);
}

/** What the rejoiner works with. */
export interface RejoinerContext {
  nodeId: string;
  /** The Raft node once it runs; undefined before. */
  raft(): RaftNode | undefined;
  membership: NodeMembership;
  dataDir: DataDir;
  trust: NodeTrust;
  clients: ClusterClients;
  /** The join token from the state, if this node can open it. */
  currentToken(): string | undefined;
  peerMap(): Readonly<Record<string, string>>;
  joinerIdentity(): JoinerIdentity;
  tickMs: number;
  clock: Clock;
  /** The cluster says this node left: it stops. */
  onLeft(): void;
  log(line: string): void;
  logOnce(key: string, line: string): void;
}

/** See the file comment. */
export class Rejoiner {
  #busy = false;
  /** Since when this node has been outside without a break (monotonic ms). */
  #outsideSince: number | undefined;
  #lastRejoinAt = -Infinity;

  constructor(private readonly context: RejoinerContext) {}

  /** The loop's step: rejoins once this node has been outside long enough. */
  async step(): Promise<void> {
    const { context } = this;
    const raft = context.raft();
    if (raft === undefined || context.membership.identity === undefined || this.#busy) return;
    const why = outsideReason(raft.status(), context.nodeId, context.tickMs);
    if (why === undefined) {
      this.#outsideSince = undefined;
      return;
    }
    const now = context.clock.monotonicMs();
    this.#outsideSince ??= now;
    if (now - this.#outsideSince < rejoinAfterMs(context.tickMs) || now - this.#lastRejoinAt < REJOIN_INTERVAL_MS) return;
    await this.rejoin(true, why);
  }

  /** Sends a rejoin Join to the leader (or, knowing none, to every known peer until one takes it). One at a time. */
  async rejoin(outside: boolean, why: string): Promise<void> {
    const { context } = this;
    const raft = context.raft();
    if (raft === undefined || this.#busy) return;
    const token = context.currentToken() ?? context.dataDir.readToken();
    if (token === undefined) {
      context.logOnce('rejoin-no-token', `cannot ask to rejoin (${why}): this node knows no join token`);
      return;
    }
    this.#busy = true;
    this.#lastRejoinAt = context.clock.monotonicMs();
    try {
      const status = raft.status();
      const peers = context.peerMap();
      const leaderAddress = status.leader !== '' ? peers[status.leader] : undefined;
      const candidates = leaderAddress !== undefined ? [leaderAddress] : Object.entries(peers).filter(([id]) => id !== context.nodeId).map(([, address]) => address);
      for (const address of candidates) {
        const certificateRequest = await context.trust.prepareJoin();
        // Marked as a member's (rejoin), refresh or not: the leader refuses it once this node's record says it left, so a refresh racing
        // a leave cannot register the node again (only `hivemind join`, from an empty data directory, starts a new membership).
        const result = await sendJoin(context.clients, { address, token, identity: context.joinerIdentity(), rejoin: true, timeoutMs: REJOIN_CALL_TIMEOUT_MS, certificateRequest });
        if (result.ok) {
          context.trust.completeJoin(result.joined);
          context.log(`${outside ? 'rejoined' : 'refreshed this node\'s record'} through ${address} (${why}); leader ${result.joined.leader}`);
          raft.setPeers({ ...raft.peerAddresses(), ...result.joined.peers });
          this.#outsideSince = undefined;
          return;
        }
        if (result.status === grpc.status.FAILED_PRECONDITION && result.reason === 'left') {
          context.log(`the cluster says this node left: ${result.message}`);
          context.membership.markLeft();
          context.onLeft();
          return;
        }
        const reason = describeJoinFailure(result);
        context.logOnce(`rejoin:${address}:${reason}`, `cannot rejoin through ${address} (${why}): ${reason}`);
      }
    } finally {
      this.#busy = false;
    }
  }
}
