/**
 * When the leader gives a node a slice of a tenant network
 * (`network.attach`) and takes it back (`network.detach`). Pure: the state
 * it reads, the clock and the idle times it keeps come in as arguments, so
 * the same plan runs in tests without a cluster.
 *
 * A node needs a slice of a network while an instance on that network is
 * placed on it and may hold an address there: desired running (it is
 * about to start, or runs), or still starting or running while it is being
 * stopped. A slice the node holds without such an instance is idle; it is
 * given back once it has been idle for `graceMs` on the leader's clock, so
 * an instance rescheduled back, or the next version of a rolling update,
 * finds it still there. Idle times live in the leader's memory only: a new
 * leader starts the grace again, which only keeps a slice longer.
 */
import { assert } from '../../consensus/core/assert.js';
import { mayHoldSliceAddress } from '../state/apply-tenant-networks.js';
import { versionNetworks } from '../state/app-networks.js';
import type { App, TenantNetwork } from '../state/types.js';

/** Attach and detach commands one plan proposes at most; the rest wait for the next pass. */
export const ATTACH_PROPOSALS_MAX = 32;

/** What the plan reads of an instance. */
export interface AttachInstance {
  tenant: string;
  app: string;
  node?: string;
  desired: 'running' | 'stopped';
  state: string;
  /** The networks its version's spec joins (`versionNetworks`); absent: `appNetworks`, else its tenant's `default`. */
  networks?: readonly string[];
}

/**
 * The networks whose slice an instance of `app`'s `version` needs on its
 * node: those its spec joins (`versionNetworks`), none for a process app
 * (no image: it runs on the host's network, and a slice would only make an
 * idle bridge on every node that runs one).
 */
export function sliceNetworksOf(app: Pick<App, 'versions'> | undefined, version: number): readonly string[] {
  const spec = app?.versions.find((entry) => entry.version === version)?.spec;
  if (spec !== undefined && spec.image === undefined) return [];
  return versionNetworks(app, version);
}

/** A network and a node: one slice, held or wanted. */
export interface NetworkNode {
  tenant: string;
  name: string;
  node: string;
}

/** The plan's inputs. */
export interface AttachInput {
  networks: readonly TenantNetwork[];
  instances: readonly AttachInstance[];
  /** Node ids with their status; a node that is unknown or has left gets no slice. */
  nodes: readonly { id: string; status: string }[];
  /** The names of the networks an app is on, by `tenant/app`; an app not listed is on its tenant's `default`. */
  appNetworks?: ReadonlyMap<string, readonly string[]>;
  /** When each held slice was first seen idle (leader's clock, ms), by `sliceKey`: the last plan's `idleSinceMs`. */
  idleSinceMs: ReadonlyMap<string, number>;
  nowMs: number;
  graceMs: number;
}

/** What to propose, and the idle times to keep for the next plan. */
export interface AttachPlan {
  attach: NetworkNode[];
  detach: NetworkNode[];
  idleSinceMs: Map<string, number>;
}

/** The key of one slice in `idleSinceMs`: `tenant/name@node`. */
export function sliceKey(entry: NetworkNode): string {
  return `${entry.tenant}/${entry.name}@${entry.node}`;
}

/** Whether `instance` needs its network on its node now. */
export function holdsSlice(instance: AttachInstance): boolean {
  return instance.node !== undefined && mayHoldSliceAddress(instance.desired, instance.state);
}

/**
 * The attaches and detaches to propose now: an attach for every (network,
 * node) an instance needs that has no slice (nodes unknown or left
 * skipped, a network that does not exist skipped), a detach for every
 * slice idle for at least `graceMs`. Sorted by network then node, at most
 * ATTACH_PROPOSALS_MAX of both together, attaches first. An instance's
 * networks are its app's (`appNetworks`) or its tenant's `default`.
 */
export function planAttachments(input: AttachInput): AttachPlan {
  assert(input.graceMs >= 0, 'the detach grace is not negative');
  const byKey = new Map(input.networks.map((network) => [`${network.tenant}/${network.name}`, network]));
  const live = new Set(input.nodes.filter((node) => node.status !== 'left').map((node) => node.id));
  const wanted = new Map<string, NetworkNode>();
  for (const instance of input.instances) {
    if (!holdsSlice(instance) || !live.has(instance.node!)) continue;
    for (const name of instance.networks ?? input.appNetworks?.get(`${instance.tenant}/${instance.app}`) ?? ['default']) {
      if (!byKey.has(`${instance.tenant}/${name}`)) continue;
      const entry = { tenant: instance.tenant, name, node: instance.node! };
      wanted.set(sliceKey(entry), entry);
    }
  }
  const attach: NetworkNode[] = [];
  const detach: NetworkNode[] = [];
  const idleSinceMs = new Map<string, number>();
  const held = new Set<string>();
  for (const network of input.networks) {
    for (const slice of network.slices) {
      const entry = { tenant: network.tenant, name: network.name, node: slice.node };
      const key = sliceKey(entry);
      held.add(key);
      if (wanted.has(key)) continue;
      const since = input.idleSinceMs.get(key) ?? input.nowMs;
      if (input.nowMs - since >= input.graceMs) detach.push(entry);
      else idleSinceMs.set(key, since);
    }
  }
  for (const [key, entry] of wanted) if (!held.has(key)) attach.push(entry);
  const order = (left: NetworkNode, right: NetworkNode): number => compare(sliceKey(left), sliceKey(right));
  attach.sort(order);
  detach.sort(order);
  const attachKept = attach.slice(0, ATTACH_PROPOSALS_MAX);
  const detachKept = detach.slice(0, ATTACH_PROPOSALS_MAX - attachKept.length);
  // A detach left for the next plan stays due: keep its idle time.
  for (const entry of detach.slice(detachKept.length)) idleSinceMs.set(sliceKey(entry), input.idleSinceMs.get(sliceKey(entry)) ?? input.nowMs);
  return { attach: attachKept, detach: detachKept, idleSinceMs };
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}
