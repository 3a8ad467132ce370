/**
 * The policy chains' I/O: reads the filter table with `iptables-save` and
 * replaces Hivemind's chains in one `iptables-restore --noflush` transaction
 * (atomic: a packet sees the old rules or the new, never a half), in the
 * agent's network namespace. It touches only Hivemind's chains
 * (`isHivemindChain`) and the one jump from FORWARD into them. What to write
 * comes from `policy-plan.ts`.
 */
import { spawn } from 'node:child_process';
import { parseSaved, restoreInput, type PolicyChains, type SavedPolicyChains } from './policy-plan.js';

/** A failed `iptables-save` or `iptables-restore`; the message names the command and its error. */
export class PolicyTablesError extends Error {
  override readonly name = 'PolicyTablesError';
  readonly code = 'policy-tables';
  readonly retryable = true;
}

/** How long one iptables run may take. */
const COMMAND_TIMEOUT_MS = 10_000;

/** Runs `file` (iptables-save, iptables-restore) with `input` on stdin; answers its stdout, or rejects with a PolicyTablesError. */
export function runIptables(file: string, args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new PolicyTablesError(`${file}: ${error.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new PolicyTablesError(`${file} ${args.join(' ')}: ${stderr.trim() || `exit code ${code ?? 'none (killed)'}`}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
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
