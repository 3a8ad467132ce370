// Randomized states (seeded): whatever the plan, nothing lands on a node that
// is not up, no node is over-committed, no host port is published twice on a
// node, every constraint holds, and maxPerNode is respected.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../../../consensus/core/random.js';
import { parseConstraints, constraintHolds } from '../constraints.js';
import { appKey, appsByKey, holdsResources, residentOf, specOf } from '../node-load.js';
import { planPlacements, type PlacementInput } from '../placement.js';
import type { App, Instance, NodeRecord, PortSpec } from '../../state/types.js';
import { app, MiB, node } from './fixtures.js';

const STATES = 200;
const statuses = ['up', 'up', 'up', 'up', 'suspect', 'down', 'left'] as const;

function randomState(random: SeededRandom): PlacementInput {
  const nodeCount = 1 + random.below(50);
  const nodes: NodeRecord[] = Array.from({ length: nodeCount }, (_, index) =>
    node(`n${index}`, {
      status: statuses[random.below(statuses.length)]!,
      labels: { zone: `z${random.below(3)}` },
      resources: { cpuMillis: 1000 * (1 + random.below(8)), memoryBytes: 256 * MiB * (1 + random.below(16)) },
    }),
  );
  const appCount = 1 + random.below(20);
  const apps: App[] = [];
  const instances: Instance[] = [];
  const instanceMax = 1 + random.below(500);
  for (let index = 0; index < appCount && instances.length < instanceMax; index++) {
    const ports: PortSpec[] = random.chance(0.3) ? [{ target: 80, published: 8000 + random.below(4), protocol: random.chance(0.5) ? 'tcp' : 'udp' }] : [];
    const constraints = random.chance(0.3) ? [`node.labels.zone ${random.chance(0.5) ? '==' : '!='} z${random.below(3)}`] : [];
    const hivemind = { priority: random.below(3), ...(random.chance(0.3) ? { maxPerNode: 1 + random.below(3) } : {}) };
    const reservations = random.chance(0.2) ? {} : { cpuMillis: 100 * (1 + random.below(20)), memoryBytes: 64 * MiB * (1 + random.below(16)) };
    const limits = { cpuMillis: 2000, memoryBytes: 1024 * MiB };
    apps.push(app(`a${index}`, { ports, constraints, hivemind, reservations, limits }));
    const replicas = 1 + random.below(Math.max(1, Math.min(100, instanceMax - instances.length)));
    for (let slot = 0; slot < replicas; slot++) {
      const placed = random.chance(0.3) ? `n${random.below(nodeCount + 1)}` : undefined;
      const made: Instance = {
        id: `a${index}-${slot}`,
        tenant: 'default',
        app: `a${index}`,
        version: 1,
        slot,
        desired: random.chance(0.9) ? 'running' : 'stopped',
        status: { state: random.chance(0.8) ? 'running' : 'exited', reportedAt: 0, updatedIndex: 1 },
        createdIndex: 1,
      };
      if (placed !== undefined) made.node = placed;
      instances.push(made);
    }
  }
  return { nodes, apps, instances, strategy: random.chance(0.5) ? 'spread' : 'binpack', seed: random.next() };
}

function check(state: PlacementInput, seed: number): { placed: number; unplaceable: number } {
  const plan = planPlacements(state);
  const where = new Map(plan.placements.map((placement) => [placement.id, placement.node]));
  const nodes = new Map(state.nodes.map((record) => [record.id, record]));
  const apps = appsByKey(state.apps);
  const before = new Set(state.instances.filter((entry) => entry.node !== undefined && nodes.get(entry.node)?.status === 'up').map((entry) => entry.id));
  const used = new Map<string, { cpu: number; memory: number; apps: Map<string, number> }>();
  for (const entry of state.instances) {
    const placed = where.get(entry.id);
    assert.ok(placed === undefined || !before.has(entry.id), `seed ${seed}: ${entry.id} was already placed`);
    const nodeId = placed ?? (before.has(entry.id) && holdsResources(entry) ? entry.node : undefined);
    if (nodeId === undefined) continue;
    const record = nodes.get(nodeId);
    assert.ok(record && record.status === 'up', `seed ${seed}: ${entry.id} on ${nodeId}, which is not up`);
    const spec = specOf(entry, apps)!;
    const resident = residentOf(entry, spec);
    const load = used.get(nodeId) ?? { cpu: 0, memory: 0, apps: new Map<string, number>() };
    used.set(nodeId, load);
    load.cpu += resident.cpuMillis;
    load.memory += resident.memoryBytes;
    load.apps.set(resident.appKey, (load.apps.get(resident.appKey) ?? 0) + 1);
    if (placed === undefined) continue;
    // Checks for what this round placed: the state before may already break rules.
    const parsed = parseConstraints(spec.constraints);
    assert.ok(parsed.ok);
    for (const constraint of parsed.constraints) assert.ok(constraintHolds(constraint, record), `seed ${seed}: ${entry.id} breaks ${constraint.text} on ${nodeId}`);
    const max = spec.hivemind.maxPerNode;
    if (max !== undefined) assert.ok((load.apps.get(appKey(entry.tenant, entry.app)) ?? 0) <= max, `seed ${seed}: maxPerNode on ${nodeId}`);
  }
  // Host ports are checked by checkPorts; resources only on nodes this round placed onto.
  for (const [nodeId, load] of used) {
    const record = nodes.get(nodeId)!;
    const touched = plan.placements.some((placement) => placement.node === nodeId);
    if (!touched) continue;
    assert.ok(load.cpu <= record.resources.cpuMillis!, `seed ${seed}: CPU over on ${nodeId}`);
    assert.ok(load.memory <= record.resources.memoryBytes!, `seed ${seed}: memory over on ${nodeId}`);
  }
  for (const entry of plan.unplaceable) assert.is(entry.reasons.reduce((sum, reason) => sum + reason.count, 0), state.nodes.length, `seed ${seed}: reason counts`);
  return { placed: plan.placements.length, unplaceable: plan.unplaceable.length };
}

function checkPorts(state: PlacementInput, seed: number): void {
  const plan = planPlacements(state);
  const where = new Map(plan.placements.map((placement) => [placement.id, placement.node]));
  const apps = appsByKey(state.apps);
  const upNodes = new Set(state.nodes.filter((record) => record.status === 'up').map((record) => record.id));
  const owners = new Map<string, string>();
  // Placed instances first, so a clash with anything else is caught.
  const ordered = [...state.instances].sort((left, right) => Number(where.has(right.id)) - Number(where.has(left.id)));
  for (const entry of ordered) {
    const placed = where.get(entry.id);
    const nodeId = placed ?? (entry.node !== undefined && upNodes.has(entry.node) && holdsResources(entry) ? entry.node : undefined);
    if (nodeId === undefined) continue;
    for (const port of residentOf(entry, specOf(entry, apps)!).ports) {
      const key = `${nodeId} ${port}`;
      if (placed !== undefined) assert.not.ok(owners.has(key), `seed ${seed}: ${entry.id} clashes on ${key} with ${owners.get(key)}`);
      owners.set(key, entry.id);
    }
  }
}

test(`${STATES} random states keep every placement rule`, () => {
  const random = new SeededRandom(20240601);
  const totals = { placed: 0, unplaceable: 0 };
  for (let index = 0; index < STATES; index++) {
    const seed = random.next();
    const state = randomState(new SeededRandom(seed));
    const outcome = check(state, seed);
    totals.placed += outcome.placed;
    totals.unplaceable += outcome.unplaceable;
    checkPorts(state, seed);
  }
  // The states must exercise both outcomes, or the checks above prove little.
  assert.ok(totals.placed > 1000 && totals.unplaceable > 100, JSON.stringify(totals));
});

test.run();
