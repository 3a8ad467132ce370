/**
 * Network routes: the cluster network as a whole (`hivemind network ls`),
 * and one node's or one app's view of it (`hivemind network inspect`). All
 * reads of the local replica, computed with the same pure functions the
 * network component programs the kernel with, so what they show is what
 * each node enforces (or will, within one reconcile). And a tenant network
 * made or deleted on its own (`hivemind network create|delete`).
 */
import { appKey, directoryOf } from '../discovery/endpoints.js';
import { overlayHost } from '../network/component.js';
import { hostOf, planOverlay } from '../network/overlay-plan.js';
import { planPolicyChains, restrictsIngress } from '../network/policy-plan.js';
import { policyModelOf } from '../network/policy-state.js';
import { planServiceChains, serviceChainName } from '../network/service-plan.js';
import { publishedOf, servicesOf } from '../network/service-state.js';
import { markText, planMesh } from '../network/mesh-plan.js';
import { currentSpec } from '../state/state.js';
import { ApiCode, ApiError } from './errors.js';
import { checkName, checkNodeId } from './input.js';
import { serve, type Route, type RouteContext } from './router.js';

/** What the network component offers the API, when this node runs one. */
interface NetworkView {
  overlayEnabled(): boolean;
}

function isNetworkView(component: unknown): component is NetworkView {
  return typeof (component as { overlayEnabled?: unknown } | undefined)?.overlayEnabled === 'function';
}

/** Whether a node carries the overlay, as every node can tell from its record: a subnet and an IPv4 peer address other hosts reach. */
function overlayOf(record: { status: string; subnet?: string; addresses: { peer: string } }): 'on' | 'off' | 'left' {
  if (record.status === 'left') return 'left';
  return record.subnet !== undefined && overlayHost(hostOf(record.addresses.peer)) ? 'on' : 'off';
}

function notFound(message: string, field: string): ApiError {
  return new ApiError(404, ApiCode.notFound, message, field);
}

function clusterCidrOf(context: RouteContext): string | undefined {
  return context.backend.machine.network()?.cidr;
}

/** `GET /v1/network`, `GET /v1/network/nodes/:id`, `GET /v1/network/apps/:tenant/:name`, `PUT` and `DELETE /v1/networks/:tenant/:name`. */
export const networkRoutes: Route[] = [
  serve('GET /v1/network', {
    read(context) {
      const { machine } = context.backend;
      const network = machine.network();
      const component = context.backend.component('network');
      const services = servicesOf(machine);
      const published = publishedOf(machine);
      const chains = network === undefined ? undefined : planServiceChains(services, { published, clusterCidr: network.cidr, ...(network.tenantCidr !== undefined ? { tenantCidr: network.tenantCidr } : {}) });
      return {
        clusterCidr: network?.cidr ?? null,
        nodePrefixLength: network?.nodePrefixLength ?? null,
        serviceCidr: network?.serviceCidr ?? null,
        configuredIndex: network?.configuredIndex ?? null,
        nodes: machine.nodeDirectory().map((node) => ({ id: node.id, status: node.status, subnet: node.subnet ?? null, peerAddress: node.addresses.peer, overlay: overlayOf(node) })),
        services: services.map((service) => ({ tenant: service.tenant, app: service.app, vip: service.vip, ports: service.ports, endpoints: service.endpoints.length })),
        published: published.map((entry) => ({ tenant: entry.tenant, app: entry.app, ports: entry.ports, endpoints: entry.endpoints.length })),
        publishedConflicts: chains?.publishedConflicts ?? [],
        tenantCidr: network?.tenantCidr ?? null,
        networks: machine
          .networks()
          .map((entry) => ({ tenant: entry.tenant, name: entry.name, cidr: entry.cidr, slices: entry.slices }))
          .sort((left, right) => (`${left.tenant}/${left.name}` < `${right.tenant}/${right.name}` ? -1 : 1)),
        answeredBy: { node: context.backend.nodeId, overlay: isNetworkView(component) ? component.overlayEnabled() : false },
      };
    },
  }),
  serve('GET /v1/network/nodes/:id', {
    read(context) {
      const id = checkNodeId(context.params.id!, 'id');
      const { machine } = context.backend;
      const directory = machine.nodeDirectory();
      const record = directory.find((node) => node.id === id);
      if (record === undefined) throw notFound(`no node "${id}" in the cluster`, 'id');
      const plan = planOverlay(id, directory.map((node) => ({ id: node.id, status: node.status, peerAddress: node.addresses.peer, ...(node.subnet !== undefined ? { subnet: node.subnet } : {}) })));
      const clusterCidr = clusterCidrOf(context);
      const policies = clusterCidr === undefined ? undefined : planPolicyChains(policyModelOf(machine, clusterCidr), id);
      const tenantCidr = machine.network()?.tenantCidr;
      const services = planServiceChains(servicesOf(machine), clusterCidr === undefined ? {} : { published: publishedOf(machine), clusterCidr, ...(tenantCidr !== undefined ? { tenantCidr } : {}) });
      const mesh = plan === undefined || clusterCidr === undefined ? undefined : planMesh(plan, clusterCidr);
      return {
        id,
        status: record.status,
        overlay: overlayOf(record),
        subnet: record.subnet ?? null,
        gateway: plan?.local.gateway ?? null,
        peers: (plan?.peers ?? []).map((peer) => ({ id: peer.id, subnet: peer.subnet, underlay: peer.underlay })),
        skipped: plan?.skipped ?? [],
        slices: machine.networks().flatMap((network) => network.slices.filter((slice) => slice.node === id).map((slice) => ({ tenant: network.tenant, network: network.name, cidr: slice.cidr }))),
        policy: policies === undefined ? null : { destinations: policies.destinationCount, chains: policies.chains.size, rules: policies.ruleCount },
        services: { vips: services.serviceCount, published: services.publishedCount, endpoints: services.endpointCount, rules: services.ruleCount },
        mesh: mesh === undefined ? null : { returnRoutes: mesh.routes.map((route) => ({ peer: route.peer, mark: markText(route.mark), table: route.table, via: route.via })), skipped: mesh.skipped },
      };
    },
  }),
  serve('GET /v1/network/apps/:tenant/:name', {
    read(context) {
      const tenant = checkName(context.params.tenant!, 'tenant');
      const name = checkName(context.params.name!, 'name');
      const { machine } = context.backend;
      const app = machine.app(tenant, name);
      if (app === undefined) throw notFound(`tenant "${tenant}" has no app "${name}"`, 'name');
      const directory = directoryOf({ ...machine.schedulerView(), networks: machine.networks() });
      const endpoints = directory.endpoints.get(appKey(tenant, name)) ?? [];
      const clusterCidr = clusterCidrOf(context);
      const selecting = clusterCidr === undefined ? [] : policyModelOf(machine, clusterCidr).selecting(tenant, name);
      const service = app.vip === undefined ? undefined : planServiceChains(servicesOf(machine).filter((entry) => entry.tenant === tenant && entry.app === name));
      const chain = serviceChainName(tenant, name);
      return {
        tenant,
        app: name,
        vip: app.vip ?? null,
        ports: currentSpec(app).ports.map((port) => ({ target: port.target, protocol: port.protocol })),
        endpoints: endpoints.map((endpoint) => ({ instance: endpoint.instance, address: endpoint.address, ...(endpoint.addresses !== undefined ? { addresses: endpoint.addresses } : {}), ports: endpoint.ports })),
        policies: selecting.map((policy) => ({ name: `${policy.tenant}/${policy.name}`, ingress: policy.ingress, ...(policy.egress !== undefined ? { egress: policy.egress } : {}) })),
        isolation: !selecting.some(restrictsIngress) ? `default: only tenant "${tenant}" and addresses outside the cluster network reach it` : 'only what a rule of the listed policies allows',
        serviceChain: service === undefined ? null : { name: chain, rules: service.chains.get(chain) ?? [] },
      };
    },
  }),
  serve('PUT /v1/networks/:tenant/:name', {
    async write(context) {
      const tenant = checkName(context.params.tenant!, 'tenant');
      const name = checkName(context.params.name!, 'name');
      const cidr = context.body.cidr;
      return context.commit([{ type: 'network.create', tenant, name, ...(cidr !== undefined ? { cidr } : {}) }]);
    },
  }),
  serve('DELETE /v1/networks/:tenant/:name', {
    async write(context) {
      return context.commit([{ type: 'network.delete', tenant: checkName(context.params.tenant!, 'tenant'), name: checkName(context.params.name!, 'name') }]);
    },
  }),
];
