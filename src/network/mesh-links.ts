/**
 * The routing mesh's way back, I/O: reads and writes the mangle chain with
 * `iptables-save` / `iptables-restore --noflush` (one transaction), and the
 * `ip rule`s and per-peer tables with `ip` (one batch), in the agent's
 * network namespace. What to write comes from `mesh-plan.ts`; only the
 * mesh's chain, its jump, the rules at its priority and the tables in its
 * range are touched.
 */
import { writeFile } from 'node:fs/promises';
import { runIptables } from './policy-tables.js';
import { runCommand } from './run-command.js';
import { OverlayError, linkExists } from './overlay-links.js';
import { VXLAN_NAME } from './overlay-plan.js';
import { isMeshTable, MESH_CHAIN, MESH_JUMP_COMMENT, MESH_RULE_PRIORITY, meshRestoreInput, meshRuleSelector, parseSavedMesh, type MeshRouting, type SavedMeshChain } from './mesh-plan.js';

/** The mesh chain as the kernel has it now. */
export async function readMeshChain(): Promise<SavedMeshChain> {
  return parseSavedMesh(await runIptables('iptables-save', ['-t', 'mangle']));
}

/** Makes the mesh chain hold `rules`, jumped to first from PREROUTING; answers what the kernel has after. */
export async function applyMeshChain(rules: readonly string[], found: SavedMeshChain): Promise<SavedMeshChain> {
  await runIptables('iptables-restore', ['--noflush', '-w', '5'], meshRestoreInput(rules, found));
  return readMeshChain();
}

async function ipJson<T>(args: string[]): Promise<T[]> {
  const result = await runCommand('ip', ['-j', ...args]);
  if (result.code !== 0) throw new OverlayError(`ip ${args.join(' ')}: ${result.stderr.trim() || `exit code ${result.code}`}`);
  const text = result.stdout.trim();
  return text === '' ? [] : (JSON.parse(text) as T[]);
}

/** The mesh's rules (at its priority) and its tables' default routes. */
export async function readMeshRouting(): Promise<MeshRouting> {
  const routing: MeshRouting = { rules: new Map(), routes: new Map() };
  for (const rule of await ipJson<{ priority?: number; fwmark?: string; fwmask?: string; iif?: string; table?: string }>(['-4', 'rule', 'show'])) {
    if (rule.priority !== MESH_RULE_PRIORITY || rule.fwmark === undefined) continue;
    routing.rules.set(meshRuleSelector(rule.fwmark, rule.fwmask ?? '0xffffffff', rule.iif), Number(rule.table));
  }
  for (const route of await ipJson<{ dst?: string; gateway?: string; table?: string }>(['-4', 'route', 'show', 'table', 'all'])) {
    const table = Number(route.table);
    if (route.dst === 'default' && route.gateway !== undefined && isMeshTable(table)) routing.routes.set(table, route.gateway);
  }
  return routing;
}

/** Runs `lines` as one `ip -batch`. */
export async function applyMeshRouting(lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const input = `${lines.join('\n')}\n`;
  const result = await runCommand('ip', ['-batch', '-'], input);
  if (result.code !== 0) throw new OverlayError(`ip -batch (${lines.slice(0, 3).join('; ')}): ${result.stderr.trim() || `exit code ${result.code}`}`);
}

/**
 * Loose reverse-path filtering on the VXLAN device: a mesh connection
 * arrives on it from a client the node's own routes reach by the underlay,
 * which strict filtering (`rp_filter=1`, some distributions' default) drops.
 */
export async function loosenReversePath(): Promise<void> {
  if (linkExists(VXLAN_NAME)) await writeFile(`/proc/sys/net/ipv4/conf/${VXLAN_NAME}/rp_filter`, '2').catch(() => undefined);
}

/** Removes the jump, the chain, the rules and the tables' routes (tests and uninstall). */
export async function removeMesh(): Promise<void> {
  const found = await readMeshChain();
  if (found.exists) {
    const lines = ['*mangle', `:${MESH_CHAIN} - [0:0]`];
    if (found.hooked || found.misplaced) lines.push(`-D PREROUTING -m comment --comment "${MESH_JUMP_COMMENT}" -j ${MESH_CHAIN}`);
    lines.push(`-X ${MESH_CHAIN}`, 'COMMIT', '');
    await runIptables('iptables-restore', ['--noflush', '-w', '5'], lines.join('\n'));
  }
  const routing = await readMeshRouting();
  const lines = [...[...routing.rules].map(([selector, table]) => `rule del priority ${MESH_RULE_PRIORITY} ${selector} lookup ${table}`), ...[...routing.routes.keys()].map((table) => `route del default table ${table}`)];
  await applyMeshRouting(lines);
}
