import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_NETWORK_PROPOSALS_MAX, missingDefaultNetworks } from '../default-networks.js';
import { NETWORKS_PER_TENANT_MAX } from '../../state/tenant-ipam.js';
import { planAttachments } from '../attach-plan.js';
import { tenantNetworksProblem } from '../../state/apply-tenant-networks.js';
import { versionNetworks } from '../../state/app-networks.js';
import { decodeState } from '../../state/snapshot.js';
import { STATE_VERSION_LABEL, type Command, type TenantNetwork } from '../../state/types.js';
import { appSpec, Driver, registerNode as registerOldNode } from '../../state/test/fixtures.js';

function registerNode(id: string): Command {
  const command = registerOldNode(id) as Extract<Command, { type: 'node.register' }>;
  return { ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: '6' } };
}

/** What the leader's network component reads of the state for the plan. */
function planOf(driver: Driver): string[] {
  const machine = driver.machine;
  return missingDefaultNetworks({
    tenants: machine.tenants().filter((tenant) => tenant.createdIndex > 0).map((tenant) => tenant.name),
    networks: machine.networks(),
    pool: machine.clusterVersion >= 5 ? machine.network()?.tenantCidr : undefined,
  });
}

test('tenants made before the pool get their default through network.create, the same blocks on every replica; their new instances are on it', () => {
  const replicas = [new Driver(), new Driver()];
  const both = (command: Command): void => {
    for (const driver of replicas) driver.ok(command);
  };
  for (const id of ['n1', 'n2']) both(registerNode(id));
  // An old cluster: the network without a pool, tenants and an app made then.
  both({ type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24 });
  both({ type: 'tenant.create', name: 'beta', quota: {} });
  both({ type: 'tenant.create', name: 'acme', quota: {} });
  both({ type: 'app.deploy', spec: appSpec({ tenant: 'acme', name: 'web', replicas: 1 }) });
  const [first] = replicas;
  assert.equal(first!.machine.networks(), [], 'no network before the pool');
  assert.equal(planOf(first!), [], 'nothing to give while there is no pool');
  both({ type: 'cluster.version', version: 6 });
  both({ type: 'network.configure', cidr: '10.210.0.0/16', nodePrefixLength: 24, tenantCidr: '10.224.0.0/12' });
  // The implicit `default` tenant has no record, so no network: a deploy adopts it and makes its network.
  assert.equal(planOf(first!), ['acme', 'beta'], 'the stored tenants without a default, by name');
  for (const tenant of planOf(first!)) both({ type: 'network.create', tenant, name: 'default' });
  for (const driver of replicas) {
    assert.equal(driver.machine.networks().map((network) => [network.tenant, network.name, network.cidr]), [['acme', 'default', '10.224.0.0/20'], ['beta', 'default', '10.224.16.0/20']]);
    assert.is(tenantNetworksProblem(decodeState(driver.machine.snapshot())), undefined);
  }
  assert.equal(planOf(first!), [], 'once given, nothing more');
  // Their instances are on it: the leader's attach plan asks a slice where one is placed.
  const view = first!.machine.schedulerView();
  const app = view.apps.find((entry) => entry.name === 'web')!;
  assert.equal(versionNetworks(app, app.version), ['default']);
  both({ type: 'instance.place', placements: [{ id: first!.machine.instances()[0]!.id, node: 'n1' }] });
  const placed = first!.machine.schedulerView();
  const attach = planAttachments({
    networks: first!.machine.networks(),
    instances: placed.instances.map((instance) => ({ tenant: instance.tenant, app: instance.app, desired: instance.desired, state: instance.status.state, networks: versionNetworks(app, instance.version), ...(instance.node !== undefined ? { node: instance.node } : {}) })),
    nodes: placed.nodes,
    idleSinceMs: new Map(),
    nowMs: 0,
    graceMs: 1000,
  });
  assert.equal(attach.attach, [{ tenant: 'acme', name: 'default', node: 'n1' }]);
});

function network(tenant: string, name: string, cidr: string): TenantNetwork {
  return { tenant, name, cidr, createdIndex: 1, slices: [] };
}

test('none while the pool is not ready or has no free block; a tenant holding another network still gets its default, one holding the most a tenant may does not; at most DEFAULT_NETWORK_PROPOSALS_MAX a plan', () => {
  const tenants = Array.from({ length: DEFAULT_NETWORK_PROPOSALS_MAX + 3 }, (_, index) => `t${String(index).padStart(2, '0')}`);
  assert.equal(missingDefaultNetworks({ tenants, networks: [], pool: undefined }), []);
  const planned = missingDefaultNetworks({ tenants: [...tenants].reverse(), networks: [network('t00', 'default', '10.224.0.0/20'), network('t01', 'front', '10.224.16.0/20')], pool: '10.224.0.0/12' });
  assert.is(planned.length, DEFAULT_NETWORK_PROPOSALS_MAX);
  assert.equal(planned.slice(0, 2), ['t01', 't02'], 'by name; t00 holds one, t01 holds only another');
  assert.equal(missingDefaultNetworks({ tenants: ['t01'], networks: [network('t00', 'default', '10.224.0.0/20')], pool: '10.224.0.0/20' }), [], 'a pool of one block, held');
  const full = Array.from({ length: NETWORKS_PER_TENANT_MAX }, (_, index) => network('t00', `n${index}`, `10.224.${index * 16}.0/20`));
  assert.equal(missingDefaultNetworks({ tenants: ['t00', 't01'], networks: full, pool: '10.224.0.0/12' }), ['t01'], 't00 holds the most networks a tenant may');
});

test.run();
