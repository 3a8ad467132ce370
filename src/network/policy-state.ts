/**
 * The policy model of the local replica: what `policy-plan.ts` is built
 * from, read out of the state machine (no I/O). Shared by the network
 * component (enforcement) and the API (`GET /v1/policies/test`).
 */
import { DEFAULT_CLUSTER_CIDR } from '../state/ipam.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { currentSpec } from '../state/state.js';
import { instanceAddressesOf, policyModel, type PolicyModel } from './policy-plan.js';

/** The model of `machine`'s state now; `clusterCidr` when the cluster network is not configured yet. */
export function policyModelOf(machine: ClusterStateMachine, clusterCidr: string = DEFAULT_CLUSTER_CIDR): PolicyModel {
  const tenantCidr = machine.network()?.tenantCidr;
  return policyModel({
    clusterCidr: machine.network()?.cidr ?? clusterCidr,
    ...(tenantCidr !== undefined ? { tenantCidr } : {}),
    networks: machine.networks(),
    // An instance on several networks is one entry per address.
    instances: machine.instances().flatMap((instance) => {
      const base = { id: instance.id, tenant: instance.tenant, app: instance.app, ...(instance.node !== undefined ? { node: instance.node } : {}), updatedIndex: instance.status.updatedIndex };
      const addresses = instanceAddressesOf(instance.status);
      return addresses.length === 0 ? [base] : addresses.map((address) => ({ ...base, address }));
    }),
    policies: machine.policies(),
    apps: machine.apps().map((app) => ({ tenant: app.tenant, name: app.name, policies: currentSpec(app).hivemind.policies ?? [] })),
  });
}
