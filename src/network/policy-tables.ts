/**
 * The policy chains' I/O: reads the filter table with `iptables-save` and
 * replaces Hivemind's chains in one `iptables-restore --noflush` transaction
 * (atomic: a packet sees the old rules or the new, never a half), in the
 * agent's network namespace. It touches only Hivemind's chains
 * (`isHivemindChain`) and the one jump from FORWARD into them. What to write
 * comes from `policy-plan.ts`.
 */
import { runCommand } from './run-command.js';
import { parseSaved, restoreChangesInput, restoreInput, type PolicyChains, type SavedPolicyChains } from './policy-plan.js';

/** A failed `iptables-save` or `iptables-restore`; the message names the command and its error. */
export class PolicyTablesError extends Error {
  override readonly name = 'PolicyTablesError';
  readonly code = 'policy-tables';
  readonly retryable = true;
}

/** Runs `file` (iptables-save, iptables-restore) with `input` on stdin; answers its stdout, or rejects with a PolicyTablesError. */
export async function runIptables(file: string, args: string[], input = ''): Promise<string> {
  const result = await runCommand(file, args, input);
  if (result.code === 0) return result.stdout;
  throw new PolicyTablesError(`${file} ${args.join(' ')}: ${result.stderr.trim() || `exit code ${result.code}`}`);
}

/** Hivemind's chains as the kernel has them now. */
export async function readPolicyChains(): Promise<SavedPolicyChains> {
  return parseSaved(await runIptables('iptables-save', ['-t', 'filter']));
}

/** Makes Hivemind's chains equal to `desired`, given what `readPolicyChains` found; answers what the kernel has after. */
export async function applyPolicyChains(desired: PolicyChains, found: SavedPolicyChains): Promise<SavedPolicyChains> {
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], restoreInput(desired, found.chains, found.jumpPresent));
  return readPolicyChains();
}

/**
 * Takes the kernel from `previous` (what the last apply wrote) to `desired`
 * in one `iptables-restore --noflush`, writing only the chains that differ
 * and reading nothing first: the path of a state change, where the chains
 * in force are those of the last apply. Answers whether it wrote anything.
 * Rejects with a PolicyTablesError when the kernel no longer has what the
 * last apply left (a chain deleted by hand): the caller then reads the
 * kernel and rewrites everything (`applyPolicyChains`).
 */
export async function applyPolicyChanges(desired: PolicyChains, previous: ReadonlyMap<string, readonly string[]>): Promise<boolean> {
  const input = restoreChangesInput(desired, previous);
  if (input === undefined) return false;
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], input);
  return true;
}

/** Removes the jump from FORWARD and every Hivemind chain (tests and uninstall). */
export async function removePolicyChains(): Promise<void> {
  const found = await readPolicyChains();
  const lines = ['*filter', ...found.chains.map((name) => `:${name} - [0:0]`)];
  if (found.jumpPresent) lines.push(`-D FORWARD -m comment --comment "hivemind: network policies" -j HIVEMIND-POLICY`);
  lines.push(...found.chains.map((name) => `-X ${name}`), 'COMMIT', '');
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], lines.join('\n'));
}
