/**
 * Which host user a tenant's workloads run as. Every tenant has its own
 * unprivileged uid (and a gid of the same number) in a range of ids the
 * agent owns: `base + uidOffset`, the offset given once per tenant by the
 * replicated state (`Tenant.uidOffset`), so every node of the cluster agrees
 * and no two tenants, nor a deleted tenant and a new one, ever share one.
 * The range must hold no host account: `rangeProblem` checks /etc/passwd and
 * /etc/group for one, and a node with such an account runs no confined
 * process app rather than run it as someone's user.
 *
 * A tenant whose settings allow host users (`TenantSettings.hostUsers`) runs
 * its process apps as the agent's user or as their `user:`; see
 * state/tenant-confinement.ts for what is refused otherwise.
 *
 * Pure but for `hostAccountsIn`, which reads /etc/passwd and /etc/group.
 */
import { readFileSync } from 'node:fs';
import { confinementProblem } from '../state/tenant-confinement.js';
import type { AppSpec, Tenant } from '../state/types.js';

/** A numeric user and group on the host. */
export interface HostIds {
  uid: number;
  gid: number;
}

/** The ids tenants' users are taken from: `base` for offset 0 (`default`), up to `base + size - 1`. */
export interface TenantUidRange {
  base: number;
  size: number;
}

/**
 * The default range: above systemd's range for containers' users
 * (524288–1879048191) and below 2^31, so it meets no ordinary account and
 * no tool that reads uids as signed 32-bit numbers.
 */
export const TENANT_UID_RANGE_DEFAULT: TenantUidRange = { base: 1_900_000_000, size: 100_000 };

/** The environment variable that sets the range, `BASE-LAST` (inclusive), such as `1900000000-1900099999`. */
export const TENANT_UIDS_VARIABLE = 'HIVEMIND_TENANT_UIDS';

/** Reads `BASE-LAST`; a message naming the problem for anything else. */
export function parseTenantUidRange(text: string): { ok: true; range: TenantUidRange } | { ok: false; message: string } {
  const match = /^(\d{1,10})-(\d{1,10})$/.exec(text.trim());
  const fail = (why: string) => ({ ok: false as const, message: `${TENANT_UIDS_VARIABLE}="${text}": ${why}` });
  if (match === null) return fail('expected BASE-LAST, two user ids such as 1900000000-1900099999');
  const base = Number(match[1]);
  const last = Number(match[2]);
  if (base < 1000) return fail('the range must start at 1000 or above, away from system accounts');
  if (last < base) return fail('LAST must not be below BASE');
  if (last > 2_147_483_646) return fail('LAST must be below 2147483647 (2^31 - 1)');
  return { ok: true, range: { base, size: last - base + 1 } };
}

/** The host accounts (`passwd:name` or `group:name`) whose id falls in `range`; empty when the agent owns it alone. */
export function hostAccountsIn(range: TenantUidRange, files: { passwd?: string; group?: string } = {}): string[] {
  const found: string[] = [];
  for (const [kind, path] of [['passwd', files.passwd ?? '/etc/passwd'], ['group', files.group ?? '/etc/group']] as const) {
    for (const line of readLines(path)) {
      const fields = line.split(':');
      const id = Number(fields[2]);
      if (Number.isSafeInteger(id) && id >= range.base && id < range.base + range.size) found.push(`${kind}:${fields[0]}`);
    }
  }
  return found;
}

/** The message that refuses confined apps on a node whose range holds host accounts (undefined when it holds none). */
export function rangeProblem(range: TenantUidRange, accounts: string[]): string | undefined {
  if (accounts.length === 0) return undefined;
  const last = range.base + range.size - 1;
  return (
    `the tenant user ids ${range.base}-${last} of this node are not the agent's alone: ${accounts.slice(0, 3).join(', ')}${accounts.length > 3 ? ` and ${accounts.length - 3} more` : ''} ` +
    `use them; give the agent a free range with ${TENANT_UIDS_VARIABLE}=BASE-LAST`
  );
}

/** How a workload of the tenant runs on this node. */
export interface WorkloadIdentity {
  /** The user a process workload runs as; absent: the app's `user`, else the agent's own (the tenant allows host users). */
  runAs?: HostIds;
  /** Who owns the root of each named volume the workload mounts (its tenant's user when confined; absent: left as it is). */
  volumeOwner?: HostIds;
}

/**
 * What the tenant's settings allow `spec` on this node, and as whom it runs.
 * `tenant` undefined (not in this replica yet) is refused for now.
 */
export function workloadIdentity(
  spec: AppSpec,
  inputs: { tenant: Tenant | undefined; range: TenantUidRange; rangeProblem?: string },
): { ok: true; identity: WorkloadIdentity } | { ok: false; message: string } {
  const { tenant, range } = inputs;
  if (tenant === undefined) return { ok: false, message: `tenant "${spec.tenant}" is not in this node's replica` };
  const refused = confinementProblem(spec, tenant.settings);
  if (refused !== undefined) return { ok: false, message: `${refused.field}: ${refused.text}` };
  if (tenant.settings?.hostUsers === true) return { ok: true, identity: {} };
  if (inputs.rangeProblem !== undefined) return { ok: false, message: inputs.rangeProblem };
  if (tenant.uidOffset === undefined) {
    return { ok: false, message: `tenant "${tenant.name}" has no user id yet (a record from before tenant users); any \`hivemind tenants update ${tenant.name}\` gives it one` };
  }
  if (tenant.uidOffset >= range.size) {
    return { ok: false, message: `tenant "${tenant.name}" has user id offset ${tenant.uidOffset}, beyond this node's ${range.size} tenant user ids; give the agent a larger range with ${TENANT_UIDS_VARIABLE}` };
  }
  const ids = { uid: range.base + tenant.uidOffset, gid: range.base + tenant.uidOffset };
  return { ok: true, identity: { ...(spec.image === undefined ? { runAs: ids } : {}), volumeOwner: ids } };
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
  } catch {
    return [];
  }
}
