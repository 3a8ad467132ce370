/**
 * Scheduling follows the data: a node-local volume lives on one node (its
 * `volume.bind`), so an instance that mounts it may run only there. Each
 * such volume adds a constraint `node.id == NODE` to the instance's demand,
 * so placement, preemption and rebalancing all honour it through the same
 * checks as the app's own constraints, and `ps`/`app` show why an instance
 * waits ("constraint node.id == n2 (volume "data" lives there)" on the other
 * nodes, "down" on n2 while that node is down).
 *
 * A volume not bound yet is claimed, within a round, by the first instance
 * placed with it (or one already placed), so the replicas that share it land
 * together instead of racing to bind it on different nodes.
 *
 * Pure: no Node API.
 */
import type { AppSpec, Instance, Volume } from '../state/types.js';
import type { Constraint } from './constraints.js';

/** Volume key (`tenant/name`) to the node that holds or will hold it. */
export type VolumeNodes = Map<string, string>;

function volumeKey(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}

/**
 * What a volume being moved maps to instead of a node: node ids have no
 * spaces, so no node matches it, and its instances wait until the move ends.
 */
const MOVING_PREFIX = 'moving to ';

/** The nodes of the bound volumes; unbound volumes are absent until claimed (see claimVolumes). A volume being moved pins to no node. */
export function volumeNodesOf(volumes: readonly Volume[] | undefined): VolumeNodes {
  const nodes: VolumeNodes = new Map();
  for (const volume of volumes ?? []) {
    if (volume.moving !== undefined) nodes.set(volumeKey(volume.tenant, volume.name), `${MOVING_PREFIX}${volume.moving}`);
    else if (volume.node !== undefined) nodes.set(volumeKey(volume.tenant, volume.name), volume.node);
  }
  return nodes;
}

/** The named (not host path) volumes `spec` mounts. */
function namedVolumes(spec: AppSpec): string[] {
  const names: string[] = [];
  for (const mount of spec.volumes) if (!mount.source.startsWith('/')) names.push(mount.source);
  return names;
}

/**
 * Records `node` as the home of every volume `spec` mounts that has none
 * yet: called for instances already placed (before a round plans) and for
 * each placement the round makes.
 */
export function claimVolumes(nodes: VolumeNodes, spec: AppSpec, node: string): void {
  for (const name of namedVolumes(spec)) {
    const key = volumeKey(spec.tenant, name);
    if (!nodes.has(key)) nodes.set(key, node);
  }
}

/**
 * Claims the volumes of every instance meant to run that has a node
 * (`nodeOf`: its node, or the one a placement in flight gives it).
 * `specOf` finds an instance's spec.
 */
export function claimPlacedVolumes(nodes: VolumeNodes, instances: readonly Instance[], lookups: { specOf: (instance: Instance) => AppSpec | undefined; nodeOf: (instance: Instance) => string | undefined }): void {
  for (const instance of instances) {
    const node = lookups.nodeOf(instance);
    if (instance.desired !== 'running' || node === undefined) continue;
    const spec = lookups.specOf(instance);
    if (spec !== undefined && spec.volumes.length > 0) claimVolumes(nodes, spec, node);
  }
}

/** Per base constraint list, per pinning signature: the list with the volume constraints, so equal pinnings give the same array (caches key on it). */
const pinnedLists = new WeakMap<readonly Constraint[], Map<string, Constraint[]>>();

/**
 * `constraints` with one `node.id == NODE` per volume of `spec` that has a
 * node in `nodes`; `constraints` itself when there is none. The same inputs
 * give the same array.
 */
export function withVolumeConstraints(spec: AppSpec, constraints: Constraint[], nodes: VolumeNodes): Constraint[] {
  if (spec.volumes.length === 0 || nodes.size === 0) return constraints;
  const pins: { name: string; node: string }[] = [];
  for (const name of namedVolumes(spec)) {
    const node = nodes.get(volumeKey(spec.tenant, name));
    if (node !== undefined) pins.push({ name, node });
  }
  if (pins.length === 0) return constraints;
  const signature = pins.map((pin) => `${pin.name}@${pin.node}`).join(',');
  let bySignature = pinnedLists.get(constraints);
  if (bySignature === undefined) {
    bySignature = new Map();
    pinnedLists.set(constraints, bySignature);
  }
  let list = bySignature.get(signature);
  if (list === undefined) {
    list = [...constraints, ...pins.map((pin) => volumeConstraint(pin.name, pin.node))];
    bySignature.set(signature, list);
  }
  return list;
}

function volumeConstraint(name: string, node: string): Constraint {
  if (node.startsWith(MOVING_PREFIX)) return { attribute: { kind: 'id' }, operator: '==', value: node, text: `volume "${name}" is being ${node.replace(MOVING_PREFIX, 'moved to node ')}` };
  return { attribute: { kind: 'id' }, operator: '==', value: node, text: `node.id == ${node} (volume "${name}" lives there)` };
}
