/**
 * `network`: the cluster network (`ls`: cluster and service ranges, each
 * node's subnet and overlay, the VIPs), one node's or one app's view of it
 * (`inspect`), from `GET /v1/network...`, and a tenant network made or
 * deleted on its own (`create`, `delete`; docs/api.md).
 */
import type { Command } from 'commander';
import { contextOf, withClient } from '../context.js';
import { printJson, printLine, printTable, renderFields } from '../output.js';
import { tenantAndName } from '../parse.js';
import { tenantOption, TENANT_OF_ONE, writeAndReport } from './shared.js';

function portsText(ports: readonly { target: number; protocol: string }[]): string {
  return ports.length === 0 ? '-' : ports.map((port) => `${port.target}/${port.protocol}`).join(',');
}

/** Adds `network` (ls, create, delete, inspect) to `program`. */
export function registerNetworkCommands(program: Command): void {
  const network = program
    .command('network')
    .description("show the cluster network: ranges, node subnets and overlay, service VIPs")
    .addHelpText('after', ['', 'Examples:', '  hivemind network ls', '  hivemind network create acme/ops', '  hivemind network inspect node n2', '  hivemind network inspect app acme/web'].join('\n'));

  network
    .command('ls', { isDefault: true })
    .alias('list')
    .description('the cluster and service ranges, each node with its subnet and overlay, and the VIPs (the default)')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/network');
        if (context.json) return printJson(context, body);
        printLine(context, renderFields([
          ['cluster network', body.clusterCidr === null ? 'not configured yet' : `${body.clusterCidr} (/${body.nodePrefixLength} per node)`],
          ['service range', body.serviceCidr ?? 'none (set by a leader with the overlay on)'],
          ['tenant network pool', body.tenantCidr ?? 'none (set by a leader with the overlay on, from state version 5)'],
        ]));
        printLine(context);
        printTable(context, ['node', 'status', 'subnet', 'overlay', 'peer address'], body.nodes.map((node) => [node.id, node.status, node.subnet ?? '-', node.overlay, node.peerAddress]), 'no nodes');
        if (body.services.length > 0) {
          printLine(context);
          printTable(context, ['app', 'vip', 'ports', 'endpoints'], body.services.map((service) => [`${service.tenant}/${service.app}`, service.vip, portsText(service.ports), service.endpoints]));
        }
        if ((body.published ?? []).length > 0) {
          printLine(context);
          printTable(context, ['app', 'published on every node', 'endpoints'], body.published!.map((entry) => [`${entry.tenant}/${entry.app}`, entry.ports.map((port) => `${port.published}->${port.target}/${port.protocol}`).join(', '), entry.endpoints]));
        }
        if ((body.networks ?? []).length > 0) {
          printLine(context);
          printTable(context, ['tenant network', 'block', 'node slices'], body.networks!.map((entry) => [`${entry.tenant}/${entry.name}`, entry.cidr, entry.slices.map((slice) => `${slice.node} ${slice.cidr}`).join(', ') || '-']));
        }
        for (const conflict of body.publishedConflicts ?? []) printLine(context, `not published: ${conflict.tenant}/${conflict.app} ${conflict.published}/${conflict.protocol}, held by ${conflict.heldBy}`);
      });
    });

  network
    .command('create')
    .description('make a tenant network of its own, for app files that name it external: true (an app file makes the networks it declares itself)')
    .argument('<network>', 'the network, as NAME or TENANT/NAME')
    .option('--cidr <cidr>', 'its block: a /20 of the tenant network pool (default: the lowest free one)')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string; cidr?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'network');
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('PUT /v1/networks/:tenant/:name', { params: { tenant, name }, body: options.cidr === undefined ? {} : { cidr: options.cidr } });
        if (context.json) return printJson(context, body);
        printLine(context, `network ${tenant}/${name} created (${body.cidr})`);
      });
    });

  network
    .command('delete')
    .alias('rm')
    .description('delete a tenant network (refused while a node holds a slice of it or an app names it)')
    .argument('<network>', 'the network, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'network');
      await writeAndReport(command, (client) => client.call('DELETE /v1/networks/:tenant/:name', { params: { tenant, name } }), `network ${tenant}/${name} deleted`);
    });

  const inspect = network.command('inspect').description("one node's or one app's view of the network");
  inspect
    .command('node')
    .description("a node's subnet, overlay peers, and the policy and service chains it programs")
    .argument('<id>', 'the node')
    .action(async (id: string, _options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/network/nodes/:id', { params: { id } });
        if (context.json) return printJson(context, body);
        printLine(context, renderFields([
          ['node', `${body.id} (${body.status})`],
          ['overlay', body.overlay],
          ['subnet', body.subnet ?? '-'],
          ['gateway', body.gateway ?? undefined],
          ['policy chains', body.policy === null ? '-' : `${body.policy.chains} chains, ${body.policy.rules} rules, ${body.policy.destinations} local destinations`],
          ['service chains', `${body.services.vips} VIPs, ${body.services.published ?? 0} published ports, ${body.services.endpoints} endpoints, ${body.services.rules} rules`],
          ['routing mesh', body.mesh == null ? undefined : `answers routed back to ${body.mesh.returnRoutes.length} peers${body.mesh.skipped.length > 0 ? ` (not to ${body.mesh.skipped.map((entry) => entry.id).join(', ')})` : ''}`],
        ]));
        printLine(context);
        printTable(context, ['peer', 'subnet', 'underlay'], body.peers.map((peer) => [peer.id, peer.subnet, peer.underlay ?? '-']), 'no overlay peers');
        for (const skipped of body.skipped) printLine(context, `not a peer: ${skipped.id}: ${skipped.reason}`);
        if ((body.slices ?? []).length > 0) {
          printLine(context);
          printTable(context, ['tenant network', 'slice'], body.slices!.map((slice) => [`${slice.tenant}/${slice.network}`, slice.cidr]));
        }
      });
    });
  inspect
    .command('app')
    .description("an app's VIP and ports, its serving endpoints, and the policies that cover it")
    .argument('<app>', 'the app, as APP or TENANT/APP')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'app');
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/network/apps/:tenant/:name', { params: { tenant, name } });
        if (context.json) return printJson(context, body);
        printLine(context, renderFields([
          ['app', `${body.tenant}/${body.app}`],
          ['vip', body.vip ?? 'none'],
          ['ports', portsText(body.ports)],
          ['policies', body.policies.length === 0 ? 'none' : body.policies.map((policy) => policy.name).join(', ')],
          ['ingress', body.isolation],
          ['service chain', body.serviceChain === null ? undefined : `${body.serviceChain.name} (${body.serviceChain.rules.length} rules)`],
        ]));
        printLine(context);
        printTable(
          context,
          ['instance', 'address', 'ports'],
          body.endpoints.map((endpoint) => [endpoint.instance, endpoint.address, endpoint.ports.map((port) => (port.port === port.target ? `${port.target}/${port.protocol}` : `${port.target}->${port.port}/${port.protocol}`)).join(',')]),
          'no serving endpoints',
        );
      });
    });
}
