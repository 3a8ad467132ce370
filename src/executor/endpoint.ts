/**
 * Where a running instance is reachable, as its node reports it in the
 * instance's status (`InstanceStatus.endpoint`): service discovery (DNS, the
 * proxy) answers from it. Pure.
 *
 * A process app shares the node's network: it is reachable at the node's
 * address, on the host ports the node gave it (`hostPorts`, by target). A
 * container is reachable at the address its network attachment gave it, on
 * its target ports.
 */
import type { InstanceEndpoint, PortSpec } from '../state/types.js';

/** What the endpoint is made from. */
export interface EndpointInputs {
  /** The runtime that runs the workload: `process` or `containerd`. */
  runtimeKind: string;
  /** The workload's address as its runtime reports it (a container's address on its network). */
  workloadAddress?: string;
  /** A container on several networks: every address, the first `workloadAddress`. */
  workloadAddresses?: string[];
  /** A process app's host port of each target port. */
  hostPorts?: Record<string, number>;
  /** The app's ports (from its spec). */
  ports: PortSpec[];
  /** The node's own IP address, at which other nodes reach it. */
  nodeAddress: string;
}

/** The endpoint, or undefined when the workload has no address yet (a container not attached). */
export function instanceEndpoint(inputs: EndpointInputs): InstanceEndpoint | undefined {
  const sharesNodeNetwork = inputs.runtimeKind === 'process';
  const address = sharesNodeNetwork ? inputs.nodeAddress : inputs.workloadAddress;
  if (address === undefined || address === '') return undefined;
  const seen = new Set<string>();
  const ports: InstanceEndpoint['ports'] = [];
  for (const spec of inputs.ports) {
    const key = `${spec.target}/${spec.protocol}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const port = sharesNodeNetwork ? (inputs.hostPorts?.[String(spec.target)] ?? spec.target) : spec.target;
    ports.push({ target: spec.target, port, protocol: spec.protocol });
  }
  const addresses = sharesNodeNetwork ? undefined : inputs.workloadAddresses;
  return { address, ports, ...(addresses !== undefined && addresses.length > 1 && addresses[0] === address ? { addresses: [...addresses] } : {}) };
}

/** Whether two endpoints are equal (both absent counts as equal). */
export function sameEndpoint(left: InstanceEndpoint | undefined, right: InstanceEndpoint | undefined): boolean {
  if (left === undefined || right === undefined) return left === right;
  return (
    left.address === right.address &&
    (left.addresses ?? []).join(',') === (right.addresses ?? []).join(',') &&
    left.ports.length === right.ports.length &&
    left.ports.every((entry, index) => {
      const other = right.ports[index]!;
      return entry.target === other.target && entry.port === other.port && entry.protocol === other.protocol;
    })
  );
}
