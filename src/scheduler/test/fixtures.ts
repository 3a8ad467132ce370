// Builders for the scheduler tests: nodes, apps and instances by hand.
import type { App, AppSpec, Instance, NodeRecord } from '../../state/types.js';

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

/** An up node with 4 cores and 8 GiB unless `overrides` say otherwise. */
export function node(id: string, overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    addresses: { api: `${id}:7070`, peer: `${id}:7071`, gossip: `${id}:7072` },
    labels: {},
    resources: { cpuMillis: 4000, memoryBytes: 8 * GiB },
    status: 'up',
    role: 'voter',
    joinedIndex: 1,
    lastSeenAt: 0,
    updatedIndex: 1,
    ...overrides,
  };
}

/** An app at version 1 reserving 0.5 core and 256 MiB, no ports; `overrides` replace spec fields. */
export function app(name: string, overrides: Partial<AppSpec> = {}, tenant = 'default'): App {
  const spec: AppSpec = {
    name,
    tenant,
    image: 'nginx:1.25',
    readOnly: false,
    replicas: 1,
    environment: {},
    ports: [],
    volumes: [],
    limits: {},
    reservations: { cpuMillis: 500, memoryBytes: 256 * MiB },
    update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 0 },
    restart: { condition: 'any', delayMs: 0, windowMs: 0 },
    constraints: [],
    labels: {},
    hivemind: {},
    ...overrides,
  };
  return { tenant, name, version: 1, replicas: spec.replicas, versions: [{ version: 1, spec, deployedIndex: 1, deployedAt: 0 }], createdIndex: 1, updatedIndex: 1 };
}

/** Instance `slot` of `appName` (id `appName-slot`), on `nodeId` when given. */
export function instance(appName: string, slot: number, nodeId?: string, tenant = 'default'): Instance {
  const made: Instance = {
    id: `${appName}-${slot}`,
    tenant,
    app: appName,
    version: 1,
    slot,
    desired: 'running',
    status: { state: nodeId === undefined ? 'pending' : 'running', reportedAt: 0, updatedIndex: 1 },
    createdIndex: 1,
  };
  if (nodeId !== undefined) made.node = nodeId;
  return made;
}

/** Instances 0..count-1 of `appName`, unplaced. */
export function instances(appName: string, count: number): Instance[] {
  return Array.from({ length: count }, (_, slot) => instance(appName, slot));
}
