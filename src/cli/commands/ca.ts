/**
 * `ca status` and `ca rotate`: the cluster's certificate authority, which
 * signs the certificate every node presents on the peer port
 * (docs/internals/trust.md).
 */
import type { Command } from 'commander';
import type { CaStatusAnswer } from '../../api/answers.js';
import { objectOf } from '../answers.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { printJson, printLine, renderFields, renderTable } from '../output.js';

/** Adds `ca` and its subcommands to `program`. */
export function registerCaCommands(program: Command): void {
  const ca = program.command('ca').description("the cluster's certificate authority: its certificates and the nodes' certificates");

  ca.command('status')
    .description('show the trusted CA certificates, whether a rotation runs, and which CA signed each node\'s certificate')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/ca/status');
        if (context.json) return printJson(context, body);
        printLine(context, renderCaStatus(context, objectOf(body, 'a CA status')));
      });
    });

  ca.command('rotate')
    .description('move the cluster to a new CA without downtime: both are trusted until every live node renewed its certificate from the new one')
    .addHelpText('after', '\nExamples:\n  hivemind ca rotate\n  hivemind ca status     # rotating: yes until every live node renewed')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('POST /v1/ca/rotate');
        if (context.json) return printJson(context, body);
        const status = objectOf(body, 'a CA status');
        printLine(context, `a new CA signs from now on (${short(status.signing)}); the old one stays trusted until every live node renewed its certificate`);
      });
    });
}

function short(fingerprint: string | null | undefined): string {
  return fingerprint === null || fingerprint === undefined ? '-' : `sha256:${fingerprint.slice(0, 16)}`;
}

function renderCaStatus(context: CliContext, status: CaStatusAnswer): string {
  const fields = renderFields([
    ['signing CA', short(status.signing)],
    ['trusted', status.trusted.map(short).join(', ')],
    ['rotating', status.rotating ? 'yes' : 'no'],
    ['revoked certificates', status.revoked],
  ]);
  const rows = status.nodes.map((node) => [
    node.id,
    node.status,
    node.serial === null ? '-' : node.serial.slice(0, 16),
    node.notAfter === null ? '-' : new Date(node.notAfter).toISOString().slice(0, 10),
    node.issuer === null ? '-' : node.issuer === status.signing ? 'signing CA' : short(node.issuer),
  ]);
  return `${fields}\n\n${renderTable(context, ['NODE', 'STATUS', 'CERTIFICATE', 'EXPIRES', 'ISSUER'], rows, 'no nodes')}`;
}
