/**
 * Keeps this node's place in the state, a step every
 * `SELF_REGISTRATION_INTERVAL_MS`:
 *
 * - on the leader: the cluster CA and the end of a CA rotation (trust.ts),
 *   the join token when the cluster has none (a bootstrap, or one
 *   interrupted), this node's own record with its current addresses and
 *   state version, and the cluster version raised once every member's
 *   record advertises a higher one (src/state/version.ts);
 * - on a follower: its record refreshed through a Join to the leader
 *   (idempotent) when its addresses or its code's state version changed
 *   (an upgrade);
 * - everywhere: the trusted CAs followed from the state, and this node's
 *   certificate renewed when due (or recorded where the state lacks it).
 */
import type { RaftNode } from '../../consensus/node.js';
import { isMember } from '../../consensus/core/config.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { AGENT_LABELS_LABEL, STATE_VERSION_LABEL, type Command, type CommandResult, type NodeAddresses, type NodeRecord, type Resources } from '../state/types.js';
import { STATE_VERSION } from '../state/version.js';
import { OWN_PROPOSAL_TIMEOUT_MS } from './proposer.js';
import type { JoinTokens } from './join-token.js';
import type { NodeTrust } from './trust.js';

/** How often the step runs, ms. */
export const SELF_REGISTRATION_INTERVAL_MS = 1000;

/** What the step works with. */
export interface SelfRegistrationContext {
  nodeId: string;
  /** The Raft node once it runs; undefined before. */
  raft(): RaftNode | undefined;
  machine: ClusterStateMachine;
  trust: NodeTrust;
  tokens: JoinTokens;
  /** The join token to store when this node leads a cluster that has none (called only then). */
  tokenToStore(): string;
  /** This node's record, unless it is of an earlier membership under this name. */
  ownRecord(): NodeRecord | undefined;
  addresses(): NodeAddresses;
  resources(): Resources;
  /** The labels the agent was started with (`--label`). */
  agentLabels(): Readonly<Record<string, string>>;
  /** Hivemind's own labels of what this node can do (LIMITS_LABEL). */
  capabilityLabels(): Readonly<Record<string, string>>;
  proposeOwn(command: Command): Promise<CommandResult>;
  submit(command: Command, timeoutMs: number): Promise<CommandResult>;
  /** Refreshes this node's record through the leader (a Join with `rejoin`). */
  refreshThroughLeader(why: string): Promise<void>;
  logOnce(key: string, component: string, line: string): void;
}

/** See the file comment; `step` is the loop's step. */
export class SelfRegistration {
  constructor(private readonly context: SelfRegistrationContext) {}

  async step(): Promise<void> {
    const { context } = this;
    const raft = context.raft();
    if (raft === undefined) return;
    const status = raft.status();
    try {
      const record = context.ownRecord();
      const addresses = context.addresses();
      const agentLabels = context.agentLabels();
      const capabilities = context.capabilityLabels();
      const registered =
        record !== undefined &&
        record.status !== 'left' &&
        sameAddresses(record.addresses, addresses) &&
        record.labels[STATE_VERSION_LABEL] === String(STATE_VERSION) &&
        holdsLabels(record.labels, agentLabels) &&
        Object.entries(capabilities).every(([key, value]) => record.labels[key] === value);
      context.trust.maybeSync();
      if (status.role === 'leader') {
        await context.trust.maybeStoreCa((command) => context.proposeOwn(command));
        await context.trust.maybeFinishRotation((command) => context.proposeOwn(command));
        await context.tokens.ensureStored(context.tokenToStore);
        if (!registered) {
          const certificate = context.trust.ownCertificateRecord();
          await context.proposeOwn({ type: 'node.register', id: context.nodeId, addresses, labels: ownLabels(record?.labels ?? {}, agentLabels, capabilities), resources: context.resources(), ...(certificate === undefined ? {} : { certificate }) });
        } else await this.maybeRenewCertificate();
        await this.maybeRaiseClusterVersion();
        return;
      }
      const member = isMember(status.config, context.nodeId);
      const caughtUp = status.applied >= status.commit && status.leader !== '';
      if (!registered && record !== undefined && member && caughtUp) {
        const why = !sameAddresses(record.addresses, addresses) ? 'its addresses changed' : record.labels[STATE_VERSION_LABEL] !== String(STATE_VERSION) ? 'its Hivemind was upgraded' : 'its --label flags or what it can enforce changed';
        await context.refreshThroughLeader(why);
      }
      // Renewal reads only the CA record and this node's own: a lagging replica renews late, never wrongly.
      if (registered) await this.maybeRenewCertificate();
    } catch (error) {
      context.logOnce(`ensure:${(error as Error).message}`, 'agent', `cannot update this node's record yet: ${(error as Error).message}`);
    }
  }

  /**
   * Leader only: raises the cluster version once every member's record says
   * its code applies a higher one (a rolling upgrade finished). The state's
   * own check decides; a refusal (a member re-registered meanwhile) waits
   * for the next step.
   */
  private async maybeRaiseClusterVersion(): Promise<void> {
    const { machine } = this.context;
    const version = machine.clusterVersionToRaise();
    if (version === undefined) return;
    const command: Command = { type: 'cluster.version', version };
    if (!machine.check(command).ok) return;
    const result = await this.context.proposeOwn(command);
    if (result.ok) this.context.logOnce(`cluster-version:${version}`, 'agent', `raised the cluster version to ${version}: every member runs a Hivemind that applies it`);
  }

  /** Renews this node's certificate when due (or records it where the state lacks it), through the leader. */
  private async maybeRenewCertificate(): Promise<void> {
    const command = await this.context.trust.maybeRenew();
    if (command === undefined) return;
    const result = await this.context.submit(command, OWN_PROPOSAL_TIMEOUT_MS);
    if (!result.ok) this.context.logOnce(`certificate:${result.error.message}`, 'trust', `cannot record this node's certificate: ${result.error.message}`);
  }
}

function sameAddresses(left: NodeAddresses, right: NodeAddresses): boolean {
  return left.api === right.api && left.peer === right.peer && left.gossip === right.gossip;
}

/**
 * What the node registers with: its recorded `labels` (those set with
 * `hivemind nodes label` stay), the agent's `--label` ones over them, the
 * keys of those (AGENT_LABELS_LABEL: `node.label` leaves them alone), what
 * it can enforce (`capabilities`: LIMITS_LABEL), and this node's state version (STATE_VERSION_LABEL), so the leader knows what
 * it applies.
 */
export function ownLabels(labels: Readonly<Record<string, string>>, agentLabels: Readonly<Record<string, string>> = {}, capabilities: Readonly<Record<string, string>> = {}): Record<string, string> {
  const keys = Object.keys(agentLabels).sort();
  const own: Record<string, string> = { ...labels, ...agentLabels, ...capabilities, [STATE_VERSION_LABEL]: String(STATE_VERSION) };
  if (keys.length > 0) own[AGENT_LABELS_LABEL] = keys.join(',');
  else delete own[AGENT_LABELS_LABEL];
  return own;
}

/** Whether `labels` (a record's) hold the agent's `--label` ones and name exactly their keys. */
function holdsLabels(labels: Readonly<Record<string, string>>, agentLabels: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(agentLabels).sort().join(',');
  if ((labels[AGENT_LABELS_LABEL] ?? '') !== keys) return false;
  return Object.entries(agentLabels).every(([key, value]) => labels[key] === value);
}
