/**
 * The service chains' I/O: reads the nat table with `iptables-save` and
 * replaces Hivemind's service chains in one `iptables-restore --noflush`
 * transaction (atomic), in the agent's network namespace. It touches only
 * Hivemind's nat chains (`isServiceChain`) and the jumps from PREROUTING and
 * OUTPUT into them. What to write comes from `service-plan.ts`.
 */
import { runIptables } from './policy-tables.js';
import { parseSavedServices, serviceRestoreInput, SERVICES_CHAIN, SERVICES_JUMP_COMMENT, type SavedServiceChains, type ServiceChains } from './service-plan.js';

/** Hivemind's nat chains as the kernel has them now. */
export async function readServiceChains(): Promise<SavedServiceChains> {
  return parseSavedServices(await runIptables('iptables-save', ['-t', 'nat']));
}

/** Makes Hivemind's nat chains equal to `desired`, given what `readServiceChains` found; answers what the kernel has after. */
export async function applyServiceChains(desired: ServiceChains, found: SavedServiceChains): Promise<SavedServiceChains> {
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], serviceRestoreInput(desired, found));
  return readServiceChains();
}

/** Removes the jumps and every Hivemind nat chain (tests and uninstall). */
export async function removeServiceChains(): Promise<void> {
  const found = await readServiceChains();
  const lines = ['*nat', ...found.chains.map((name) => `:${name} - [0:0]`)];
  for (const hook of [...found.hooked, ...found.misplaced]) lines.push(`-D ${hook} -m comment --comment "${SERVICES_JUMP_COMMENT}" -j ${SERVICES_CHAIN}`);
  lines.push(...found.chains.map((name) => `-X ${name}`), 'COMMIT', '');
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], lines.join('\n'));
}
