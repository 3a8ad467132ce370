/**
 * Gauges read from the node's replica and its TLS material at scrape time:
 * what the cluster holds (entities by kind, instances by state, nodes by
 * status, unplaceable instances), how full each tenant's quotas are, and
 * when the cluster CA and this node's certificate expire.
 *
 * Every node answers them from its own replica, so any one node's scrape
 * describes the cluster (as of its applied index); dashboards take `max by`
 * over the nodes rather than a sum. Labels are bounded: kinds, states and
 * statuses are fixed lists; tenants are the cluster's tenants.
 */
import { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from '../node/prometheus.js';
import type { ClusterStateMachine } from '../state/machine.js';
import type { InstanceState, NodeStatus, Quota } from '../state/types.js';

/** Every instance state, so that a state that empties reads 0 instead of vanishing. */
const INSTANCE_STATES: readonly InstanceState[] = ['pending', 'starting', 'running', 'healthy', 'unhealthy', 'exited', 'oom-killed', 'failed', 'stopped'];
const NODE_STATUSES: readonly NodeStatus[] = ['up', 'suspect', 'down', 'left'];

/** A quota field and its `resource` label. */
const QUOTA_RESOURCES: readonly { field: keyof Quota; resource: string }[] = [
  { field: 'cpuMillis', resource: 'cpu' },
  { field: 'memoryBytes', resource: 'memory' },
  { field: 'instances', resource: 'instances' },
  { field: 'apps', resource: 'apps' },
  { field: 'volumes', resource: 'volumes' },
  { field: 'storageBytes', resource: 'storage' },
];

/**
 * Registers `hivemind_state_*` and `hivemind_tenant_quota_used_ratio` in
 * `registry`, read from `machine` at each scrape (on the caller's thread,
 * between applies, so each scrape sees one applied index).
 */
export function registerStateMetrics(registry: Registry, machine: ClusterStateMachine): void {
  const registers = [registry];
  new Gauge({
    name: 'hivemind_state_entities',
    help: 'Records in the cluster state, by kind (apps, instances, tenants, volumes, secrets, nodes, policies, tokens), as this node\'s replica holds them.',
    labelNames: ['kind'],
    registers,
    collect() {
      const view = machine.schedulerView();
      this.set({ kind: 'apps' }, view.apps.length);
      this.set({ kind: 'instances' }, view.instances.length);
      this.set({ kind: 'volumes' }, view.volumes.length);
      this.set({ kind: 'nodes' }, view.nodes.length);
      this.set({ kind: 'tenants' }, machine.tenants().length);
      this.set({ kind: 'secrets' }, machine.secrets().length);
      this.set({ kind: 'policies' }, machine.policies().length);
      this.set({ kind: 'tokens' }, machine.apiTokens().length);
    },
  });
  new Gauge({
    name: 'hivemind_state_instances',
    help: 'Instances meant to run, by the state last reported for them (pending: not yet placed or started).',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = new Map<InstanceState, number>(INSTANCE_STATES.map((state) => [state, 0]));
      for (const instance of machine.schedulerView().instances) {
        if (instance.desired !== 'running') continue;
        counts.set(instance.status.state, (counts.get(instance.status.state) ?? 0) + 1);
      }
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'hivemind_state_nodes',
    help: 'Nodes in the cluster state, by status (up, suspect, down, left).',
    labelNames: ['status'],
    registers,
    collect() {
      const counts = new Map<NodeStatus, number>(NODE_STATUSES.map((status) => [status, 0]));
      for (const node of machine.schedulerView().nodes) counts.set(node.status, (counts.get(node.status) ?? 0) + 1);
      for (const [status, count] of counts) this.set({ status }, count);
    },
  });
  new Gauge({
    name: 'hivemind_state_unplaceable_instances',
    help: 'Instances the scheduler last reported it cannot place (no node fits), by tenant.',
    labelNames: ['tenant'],
    registers,
    collect() {
      this.reset();
      const byTenant = new Map<string, number>();
      for (const tenant of machine.tenants()) byTenant.set(tenant.name, 0);
      for (const app of machine.schedulerView().apps) {
        if (app.unplaceable !== undefined) byTenant.set(app.tenant, (byTenant.get(app.tenant) ?? 0) + app.unplaceable.count);
      }
      for (const [tenant, count] of byTenant) this.set({ tenant }, count);
    },
  });
  new Gauge({
    name: 'hivemind_tenant_quota_used_ratio',
    help: 'Share of a tenant\'s quota in use (0 to 1, above 1 after a quota was lowered), by tenant and resource (cpu, memory, instances, apps, volumes, storage); only resources with a limit.',
    labelNames: ['tenant', 'resource'],
    registers,
    collect() {
      this.reset();
      for (const tenant of machine.tenants()) {
        const usage = machine.usage(tenant.name);
        for (const { field, resource } of QUOTA_RESOURCES) {
          const limit = tenant.quota[field];
          if (limit === undefined) continue;
          this.set({ tenant: tenant.name, resource }, limit === 0 ? (usage[field] > 0 ? 1 : 0) : usage[field] / limit);
        }
      }
    },
  });
}

/** The PEM certificates whose expiry `registerCertificateMetrics` reports; absent before the node has them. */
export interface CertificatePems {
  /** This node's own certificate (the one it presents to peers and API clients). */
  node?: string;
  /** The cluster CA that signs new certificates (during a rotation, the new one). */
  ca?: string;
}

/**
 * Registers `hivemind_certificate_expiry_timestamp_seconds{certificate}`:
 * the not-after time (Unix seconds) of the node's certificate and of the
 * cluster CA, read through `read` at each scrape. A PEM that does not parse
 * is left out (the scrape never fails on it).
 */
export function registerCertificateMetrics(registry: Registry, read: () => CertificatePems): void {
  const notAfterByPem = new Map<string, number | undefined>();
  const notAfterSeconds = (pem: string): number | undefined => {
    if (!notAfterByPem.has(pem)) {
      if (notAfterByPem.size >= 16) notAfterByPem.clear(); // renewals and rotations: keep only the recent ones
      notAfterByPem.set(pem, parseNotAfterSeconds(pem));
    }
    return notAfterByPem.get(pem);
  };
  new Gauge({
    name: 'hivemind_certificate_expiry_timestamp_seconds',
    help: 'When a certificate stops being valid (Unix time, seconds): this node\'s (certificate="node") and the signing cluster CA (certificate="ca"). The node renews its own after two thirds of its life.',
    labelNames: ['certificate'],
    registers: [registry],
    collect() {
      this.reset();
      const pems = read();
      for (const certificate of ['node', 'ca'] as const) {
        const pem = pems[certificate];
        const seconds = pem === undefined ? undefined : notAfterSeconds(pem);
        if (seconds !== undefined) this.set({ certificate }, seconds);
      }
    },
  });
}

function parseNotAfterSeconds(pem: string): number | undefined {
  try {
    const milliseconds = Date.parse(new X509Certificate(pem).validTo);
    return Number.isFinite(milliseconds) ? milliseconds / 1000 : undefined;
  } catch {
    return undefined;
  }
}
