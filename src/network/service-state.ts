/**
 * The services of the local replica: what `service-plan.ts` is built from,
 * read out of the state machine (no I/O). Shared by the network component
 * (the nat chains) and the API (`GET /v1/network/apps/...`).
 */
import { appKey, directoryOf } from '../discovery/endpoints.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { currentSpec } from '../state/state.js';
import type { PublishedInput, ServiceInput } from './service-plan.js';

/** Every app of `machine`'s state that holds a VIP, with its ports and serving endpoints, in state order. */
export function servicesOf(machine: ClusterStateMachine): ServiceInput[] {
  const view = machine.schedulerView();
  const networks = machine.networks();
  const directory = directoryOf({ ...view, networks });
  const blocks = new Map(networks.map((network) => [`${network.tenant}/${network.name}`, network.cidr]));
  const services: ServiceInput[] = [];
  for (const app of view.apps) {
    if (app.vip === undefined) continue;
    const endpoints = directory.endpoints.get(appKey(app.tenant, app.name)) ?? [];
    // The first network is every endpoint's `address`: the spread without a source match covers it.
    const later = (directory.appNetworks.get(appKey(app.tenant, app.name)) ?? []).slice(1).flatMap((key) => blocks.get(key) ?? []);
    services.push({
      tenant: app.tenant,
      app: app.name,
      vip: app.vip,
      ports: currentSpec(app).ports.map((port) => ({ target: port.target, protocol: port.protocol })),
      endpoints: endpoints.map((endpoint) => ({ instance: endpoint.instance, address: endpoint.address, ...(endpoint.addresses !== undefined ? { addresses: endpoint.addresses } : {}), ports: endpoint.ports })),
      ...(later.length > 0 ? { networkBlocks: later } : {}),
    });
  }
  return services;
}

/** Every app of `machine`'s state whose current spec publishes a port, with those ports and its serving endpoints, in state order (the routing mesh). */
export function publishedOf(machine: ClusterStateMachine): PublishedInput[] {
  const view = machine.schedulerView();
  const directory = directoryOf(view);
  const published: PublishedInput[] = [];
  for (const app of view.apps) {
    const ports = currentSpec(app).ports.flatMap((port) => (port.published === undefined ? [] : [{ target: port.target, published: port.published, protocol: port.protocol }]));
    if (ports.length === 0) continue;
    const endpoints = directory.endpoints.get(appKey(app.tenant, app.name)) ?? [];
    published.push({ tenant: app.tenant, app: app.name, ports, endpoints: endpoints.map((endpoint) => ({ instance: endpoint.instance, address: endpoint.address, ports: endpoint.ports })) });
  }
  return published;
}
