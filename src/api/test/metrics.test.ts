// The node's metrics as a scrape reads them: Raft gauges from the node's
// status (leader, apply lag, each follower's lag on the leader only),
// snapshots, the state's gauges from a replica fed by commands, tenants' quota
// use, and certificate expiry from real certificates. No sockets, no timers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Registry } from 'prom-client';
import { Metrics, type RaftGaugeSource } from '../metrics.js';
import { registerCertificateMetrics, registerStateMetrics, type CertificatePems } from '../metrics-cluster.js';
import { certificateFacts, createClusterCa, createNodeKey, issueNodeCertificate } from '../../security/certificates.js';
import { Driver, GiB, MiB, appSpec, registerNode } from '../../state/test/fixtures.js';

/** The samples of `name` in a scrape of `registry`, by their labels (`{a="b"}`, or '' for none); default labels included. */
async function samples(registry: Registry, name: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const text = await registry.metrics();
  for (const match of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) found.set(match[1] ?? '', Number(match[2]));
  return found;
}

function raftSource(overrides: Partial<RaftGaugeSource>): RaftGaugeSource {
  return { term: 3, commit: 100, applied: 97, lastIndex: 104, isLeader: true, voters: 3, learners: 1, followers: [], ...overrides };
}

test('Raft gauges: the leader gauge, apply lag, and each follower\'s lag on the leader only', async () => {
  let source = raftSource({ followers: [{ id: 'n2', match: 104 }, { id: 'n3', match: 90 }, { id: 'n4', match: 0 }] });
  const metrics = new Metrics({ nodeId: 'n1', raft: () => source, defaultMetrics: false });
  assert.equal(await samples(metrics.registry, 'hivemind_raft_leader'), new Map([['{node="n1"}', 1]]));
  assert.equal(await samples(metrics.registry, 'hivemind_raft_apply_lag_entries'), new Map([['{node="n1"}', 3]]));
  assert.equal(
    await samples(metrics.registry, 'hivemind_raft_follower_lag_entries'),
    new Map([['{peer="n2",node="n1"}', 0], ['{peer="n3",node="n1"}', 14], ['{peer="n4",node="n1"}', 104]]),
  );
  source = raftSource({ isLeader: false, commit: 104, applied: 104 });
  assert.equal(await samples(metrics.registry, 'hivemind_raft_leader'), new Map([['{node="n1"}', 0]]));
  assert.equal(await samples(metrics.registry, 'hivemind_raft_apply_lag_entries'), new Map([['{node="n1"}', 0]]));
  assert.equal(await samples(metrics.registry, 'hivemind_raft_follower_lag_entries'), new Map(), 'a follower reports no follower lag (not even the old leader\'s)');
});

test('snapshots: the last size and a duration histogram, by operation', async () => {
  const metrics = new Metrics({ nodeId: 'n1', raft: () => undefined, defaultMetrics: false });
  metrics.observeSnapshot('encode', 5000, 0.02);
  metrics.observeSnapshot('encode', 7000, 0.03);
  metrics.observeSnapshot('restore', 6000, 0.5);
  assert.equal(await samples(metrics.registry, 'hivemind_raft_snapshot_bytes'), new Map([['{operation="encode",node="n1"}', 7000], ['{operation="restore",node="n1"}', 6000]]));
  assert.equal(await samples(metrics.registry, 'hivemind_raft_snapshot_duration_seconds_count'), new Map([['{node="n1",operation="encode"}', 2], ['{node="n1",operation="restore"}', 1]]));
});

test('Node\'s own metrics are registered at the first scrape (no event-loop timer on a node nobody scrapes), then kept', async () => {
  const metrics = new Metrics({ nodeId: 'n1', raft: () => undefined });
  assert.is(metrics.registry.getSingleMetric('hivemind_nodejs_eventloop_lag_p99_seconds'), undefined, 'not before a scrape');
  const first = await metrics.render();
  assert.match(first.body, /^hivemind_process_cpu_seconds_total\{node="n1"\} /m);
  assert.match(first.body, /^hivemind_nodejs_eventloop_lag_p99_seconds\{node="n1"\} /m);
  assert.match((await metrics.render()).body, /^hivemind_process_resident_memory_bytes\{node="n1"\} /m, 'registered once, scraped again');
});

test('state gauges follow the replica: entities by kind, instances by state, nodes by status, unplaceable by tenant, quota use', async () => {
  const driver = new Driver();
  const registry = new Registry();
  registerStateMetrics(registry, driver.machine);
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  driver.ok({ type: 'tenant.create', name: 'acme', quota: { memoryBytes: 1 * GiB, apps: 4, instances: 2 } });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'web', tenant: 'default', replicas: 3 }) });
  driver.ok({ type: 'app.deploy', spec: appSpec({ name: 'api', tenant: 'acme', replicas: 2, reservations: { cpuMillis: 100, memoryBytes: 384 * MiB } }) });
  const entities = await samples(registry, 'hivemind_state_entities');
  assert.is(entities.get('{kind="apps"}'), 2);
  assert.is(entities.get('{kind="instances"}'), 5);
  assert.is(entities.get('{kind="nodes"}'), 2);
  assert.is(entities.get('{kind="tenants"}'), 2);
  assert.is(entities.get('{kind="secrets"}'), 0);
  const instances = await samples(registry, 'hivemind_state_instances');
  assert.is(instances.get('{state="pending"}'), 5);
  assert.is(instances.get('{state="healthy"}'), 0, 'every state is reported, 0 when empty');
  const nodes = await samples(registry, 'hivemind_state_nodes');
  assert.is(nodes.get('{status="up"}'), 2);
  assert.is(nodes.get('{status="down"}'), 0);
  const ratios = await samples(registry, 'hivemind_tenant_quota_used_ratio');
  assert.equal(ratios, new Map([['{tenant="acme",resource="memory"}', 0.75], ['{tenant="acme",resource="instances"}', 1], ['{tenant="acme",resource="apps"}', 0.25]]), 'only resources with a limit');
  driver.ok({ type: 'app.unplaceable', updates: [{ tenant: 'acme', name: 'api', count: 2, reasons: ['2 nodes: not enough memory'] }] });
  assert.equal(await samples(registry, 'hivemind_state_unplaceable_instances'), new Map([['{tenant="default"}', 0], ['{tenant="acme"}', 2]]));
  driver.ok({ type: 'app.unplaceable', updates: [{ tenant: 'acme', name: 'api', count: 0, reasons: [] }] });
  assert.is((await samples(registry, 'hivemind_state_unplaceable_instances')).get('{tenant="acme"}'), 0);
});

test('certificate expiry: the node\'s and the CA\'s not-after in Unix seconds; a PEM that does not parse is left out', async () => {
  const now = Date.UTC(2026, 11, 1);
  const ca = await createClusterCa({ now });
  const key = await createNodeKey();
  const nodePem = await issueNodeCertificate(ca, key.keyPem, { nodeId: 'n1', now, addresses: ['127.0.0.1'] });
  let pems: CertificatePems = { node: nodePem, ca: ca.certificatePem };
  const registry = new Registry();
  registerCertificateMetrics(registry, () => pems);
  const expiry = await samples(registry, 'hivemind_certificate_expiry_timestamp_seconds');
  assert.is(expiry.get('{certificate="node"}'), certificateFacts(nodePem).notAfter / 1000);
  assert.is(expiry.get('{certificate="ca"}'), certificateFacts(ca.certificatePem).notAfter / 1000);
  assert.ok(expiry.get('{certificate="node"}')! < expiry.get('{certificate="ca"}')!, 'the node certificate expires before the CA');
  pems = { node: 'not a certificate' };
  assert.equal(await samples(registry, 'hivemind_certificate_expiry_timestamp_seconds'), new Map());
});

test.run();
