/**
 * `policies`: list, apply from a YAML/JSON file, delete. A policy file holds
 * one policy, a list of them, or `policies:` with a list; each policy is
 * `{ name, tenant?, apps?, ingress?, egress? }` as in docs/api.md.
 */
import { readFile } from 'node:fs/promises';
import type { BodyOf } from '../../api/contract.js';
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { EgressRule, NetworkPolicy, PolicyRule } from '../../state/types.js';
import { NAME_PATTERN } from '../../state/types.js';
import { listIn } from '../answers.js';
import { contextOf, withClient, type CliContext } from '../context.js';
import { ApiError, CliError, UsageError } from '../errors.js';
import { printJson, printLine, printTable } from '../output.js';
import { tenantAndName } from '../parse.js';
import { TENANT_FILTER, TENANT_OF_ONE, tenantOption, writeAndReport } from './shared.js';

/** A policy file larger than this is refused before it is parsed. */
export const POLICY_FILE_BYTES_MAX = 1024 * 1024;

/** One policy as written in a policy file. */
interface PolicyDocument {
  name: string;
  tenant?: string;
  /** As the file writes them: the node checks them, and its refusal names the field. */
  apps: PolicyBody['apps'];
  ingress: PolicyBody['ingress'];
  /** Absent: the policy leaves egress alone. */
  egress?: PolicyBody['egress'];
}

/** The body of `PUT /v1/policies/:tenant/:name`. */
type PolicyBody = BodyOf<'PUT /v1/policies/:tenant/:name'>;

/** Adds `policies` (list, apply, delete) to `program`. */
export function registerPolicyCommands(program: Command): void {
  const policies = program
    .command('policies')
    .description("list and manage network policies (which apps may reach a tenant's apps)")
    .addHelpText(
      'after',
      [
        '',
        'A policy file (YAML or JSON) holds one policy, a list, or `policies:` with a list:',
        '  name: web-from-api',
        '  tenant: acme          # optional: --tenant, else default',
        '  apps: [web]           # the apps it protects; empty: all the tenant\'s apps',
        '  ingress:',
        '    - fromApps: [api]',
        '      fromTenants: []',
        '      fromCidrs: []      # source addresses, e.g. 192.0.2.0/24',
        '      ports: [80]',
        '  egress:               # optional: then its apps reach only what these allow',
        '    - toApps: [db]',
        '      toTenants: []',
        '      toCidrs: []        # destination addresses, e.g. 0.0.0.0/0',
        '      ports: [5432]',
        '',
        'Examples:',
        '  hivemind policies',
        '  hivemind policies apply -f policy.yaml',
        '  hivemind policies delete web-from-api --tenant acme',
        '  hivemind policies test acme/api acme/web 80',
        '  hivemind policies test 192.0.2.7 acme/web 443',
      ].join('\n'),
    );

  policies
    .command('list', { isDefault: true })
    .description('list the network policies (the default)')
    .addOption(tenantOption(TENANT_FILTER))
    .action(async (options: { tenant?: string }, command: Command) => {
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/policies', { query: { tenant: options.tenant } });
        if (context.json) return printJson(context, body);
        printPolicies(context, listIn(body, 'policies'));
      });
    });

  policies
    .command('apply')
    .description('create or replace the policies in a YAML or JSON file')
    .requiredOption('-f, --file <file>', 'the policy file')
    .addOption(tenantOption('the tenant of policies that name none (default: default)'))
    .action(async (options: { file: string; tenant?: string }, command: Command) => {
      const documents = await readPolicyFile(options.file);
      const context = contextOf(command);
      const fileName = basename(options.file);
      await withClient(context, async (client) => {
        const applied: string[] = [];
        const answers: unknown[] = [];
        for (const [position, policy] of documents.entries()) {
          const where = `${fileName}: policy ${documents.length > 1 ? `[${position}] ` : ''}"${policy.name}"`;
          if (policy.tenant !== undefined && options.tenant !== undefined && policy.tenant !== options.tenant) {
            throw new UsageError(`${where} names tenant "${policy.tenant}" but --tenant is "${options.tenant}"`);
          }
          const { tenant, name } = tenantAndName(policy.name, policy.tenant ?? options.tenant, 'policy');
          const body = { apps: policy.apps ?? [], ingress: policy.ingress ?? [], ...(policy.egress !== undefined ? { egress: policy.egress } : {}) };
          try {
            answers.push((await client.call('PUT /v1/policies/:tenant/:name', { params: { tenant, name }, body })).body);
          } catch (error) {
            if (!(error instanceof ApiError)) throw error;
            const done = applied.length === 0 ? '' : ` (already applied: ${applied.join(', ')})`;
            throw new CliError(`${where}: ${error.message}${done}`, { details: error.details });
          }
          applied.push(`${tenant}/${name}`);
        }
        if (context.json) return printJson(context, answers);
        for (const name of applied) printLine(context, `policy ${name} applied`);
      });
    });

  policies
    .command('test')
    .description('say whether a connection would be allowed or denied, and which rule decided')
    .argument('<from>', 'the source: TENANT/APP, APP (with --tenant), or an IPv4 address')
    .argument('<to>', 'the destination: TENANT/APP, or APP (with --tenant)')
    .argument('<port>', 'the destination port')
    .addOption(tenantOption('the tenant of FROM and TO given as APP (default: default)'))
    .action(async (from: string, to: string, portText: string, options: { tenant?: string }, command: Command) => {
      const port = Number(portText);
      if (!/^[0-9]+$/.test(portText) || port < 1 || port > 65535) throw new UsageError(`PORT must be a port number from 1 to 65535, got "${portText}"`);
      const reference = (text: string): string => (text.includes('/') || /^\d+\.\d+\.\d+\.\d+$/.test(text) ? text : `${options.tenant ?? 'default'}/${text}`);
      const context = contextOf(command);
      await withClient(context, async (client) => {
        const { body } = await client.call('GET /v1/policies/test', { query: { from: reference(from), to: reference(to), port } });
        if (context.json) return printJson(context, body);
        const source = body.source.instance !== undefined ? ` (instance ${body.source.instance})` : '';
        const egress = body.egress !== undefined && body.egress !== body.reason ? ` (${body.egress})` : '';
        printLine(context, `${body.verdict}: ${body.from}${source} -> ${body.to} port ${body.port}: ${body.reason}${egress}`);
      });
    });

  policies
    .command('delete')
    .description('delete a network policy')
    .argument('<name>', 'the policy, as NAME or TENANT/NAME')
    .addOption(tenantOption(TENANT_OF_ONE))
    .action(async (text: string, options: { tenant?: string }, command: Command) => {
      const { tenant, name } = tenantAndName(text, options.tenant, 'policy');
      await writeAndReport(command, (client) => client.call('DELETE /v1/policies/:tenant/:name', { params: { tenant, name } }), `policy ${tenant}/${name} deleted`);
    });
}

/** Reads and parses a policy file; every problem names the file and the place in it. */
async function readPolicyFile(file: string): Promise<PolicyDocument[]> {
  const fileName = basename(file);
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > POLICY_FILE_BYTES_MAX) throw new UsageError(`${file} is ${bytes.length} bytes; a policy file may have at most ${POLICY_FILE_BYTES_MAX}`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    const code = (error as { code?: unknown }).code;
    throw new UsageError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  const { parseAllDocuments } = await import('yaml');
  const values: unknown[] = [];
  for (const document of parseAllDocuments(text)) {
    const problem = document.errors[0];
    if (problem !== undefined) {
      const place = problem.linePos?.[0];
      throw new CliError(`${fileName}:${place ? `${place.line}:${place.col}:` : ''} not valid YAML or JSON: ${problem.message.split('\n')[0]}`);
    }
    const value = document.toJS() as unknown;
    if (value !== null && value !== undefined) values.push(value);
  }
  const found = values.flatMap((value): unknown[] => {
    if (Array.isArray(value)) return value;
    if (isRecord(value) && Array.isArray(value.policies)) return value.policies as unknown[];
    return [value];
  });
  if (found.length === 0) throw new CliError(`${fileName}: has no policies`);
  return found.map((value, position) => checkPolicy(value, `${fileName}: policies[${position}]`));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const policyKeys = new Set(['name', 'tenant', 'apps', 'ingress', 'egress']);

function checkPolicy(value: unknown, where: string): PolicyDocument {
  if (!isRecord(value)) throw new CliError(`${where}: must be a mapping with name, apps and ingress`);
  for (const key of Object.keys(value)) {
    if (!policyKeys.has(key)) throw new CliError(`${where}.${key}: unknown key; a policy has name, tenant, apps, ingress and egress`);
  }
  if (typeof value.name !== 'string' || !NAME_PATTERN.test(value.name)) throw new CliError(`${where}.name: must be a name (lowercase letters, digits and -, at most 63)`);
  if (value.tenant !== undefined && (typeof value.tenant !== 'string' || !NAME_PATTERN.test(value.tenant))) {
    throw new CliError(`${where}.tenant: must be a tenant name`);
  }
  // The rules go to the node as written; its validation checks their shape (the types say what it expects).
  const rules = value as Pick<PolicyDocument, 'apps' | 'ingress' | 'egress'>;
  return { name: value.name, ...(value.tenant === undefined ? {} : { tenant: value.tenant as string }), apps: rules.apps, ingress: rules.ingress, ...(rules.egress === undefined ? {} : { egress: rules.egress }) };
}

function ruleText(rule: PolicyRule): string {
  const from = [...(rule.fromApps ?? []).map((app) => `app ${app}`), ...(rule.fromTenants ?? []).map((tenant) => `tenant ${tenant}`), ...(rule.fromCidrs ?? [])];
  const ports = rule.ports?.length ? ` on ${rule.ports.join(', ')}` : '';
  return `${from.length === 0 ? 'nothing' : from.join(', ')}${ports}`;
}

function egressText(rule: EgressRule): string {
  const to = [...(rule.toApps ?? []).map((app) => `app ${app}`), ...(rule.toTenants ?? []).map((tenant) => `tenant ${tenant}`), ...(rule.toCidrs ?? [])];
  const ports = rule.ports?.length ? ` on ${rule.ports.join(', ')}` : '';
  return `${to.length === 0 ? 'nothing' : to.join(', ')}${ports}`;
}

function printPolicies(context: CliContext, policies: NetworkPolicy[]): void {
  const rows = policies.map((policy) => [
    policy.tenant,
    policy.name,
    policy.apps.length === 0 ? '(all apps)' : policy.apps.join(', '),
    policy.ingress.length === 0 ? (policy.egress === undefined ? '(nothing)' : '(unchanged)') : policy.ingress.map(ruleText).join('; '),
    policy.egress === undefined ? '(unchanged)' : policy.egress.length === 0 ? '(nothing)' : policy.egress.map(egressText).join('; '),
  ]);
  printTable(context, ['tenant', 'name', 'protects', 'allows from', 'allows to'], rows, 'no policies');
}
