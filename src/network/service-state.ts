/**
 * The services of the local replica: what `service-plan.ts` is built from,
 * read out of the state machine (no I/O). Shared by the network component
 * (the nat chains) and the API (`GET /v1/network/apps/...`).
 */
import { appKey, directoryOf } from '../discovery/endpoints.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { currentSpec } from '../state/state.js';
import type { ServiceInput } from './service-plan.js';

/** Every app of `machine`'s state that holds a VIP, with its ports and serving endpoints, in state order. */
export function servicesOf(machine: ClusterStateMachine): ServiceInput[] {
  const view = machine.schedulerView();
  const directory = directoryOf(view);
  const services: ServiceInput[] = [];
  for (const app of view.apps) {
    if (app.vip === undefined) continue;
    const endpoints = directory.endpoints.get(appKey(app.tenant, app.name)) ?? [];
    services.push({
      tenant: app.tenant,
      app: app.name,
      vip: app.vip,
      ports: currentSpec(app).ports.map((port) => ({ target: port.target, protocol: port.protocol })),
      endpoints: endpoints.map((endpoint) => ({ instance: endpoint.instance, address: endpoint.address, ports: endpoint.ports })),
    });
  }
  return services;
}
