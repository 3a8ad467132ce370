/**
 * The policy chains' I/O: reads the filter table with `iptables-save` and
 * replaces Hivemind's chains in one `iptables-restore --noflush` transaction
 * (atomic: a packet sees the old rules or the new, never a half), in the
 * agent's network namespace. It touches only Hivemind's chains
 * (`isHivemindChain`) and the one jump from FORWARD into them. What to write
 * comes from `policy-plan.ts`.
 */
import { runCommand } from './run-command.js';
import { parseSaved, restoreInput, type PolicyChains, type SavedPolicyChains } from './policy-plan.js';

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

/** Removes the jump from FORWARD and every Hivemind chain (tests and uninstall). */
export async function removePolicyChains(): Promise<void> {
  const found = await readPolicyChains();
  const lines = ['*filter', ...found.chains.map((name) => `:${name} - [0:0]`)];
  if (found.jumpPresent) lines.push(`-D FORWARD -m comment --comment "hivemind: network policies" -j HIVEMIND-POLICY`);
  lines.push(...found.chains.map((name) => `-X ${name}`), 'COMMIT', '');
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], lines.join('\n'));
}
