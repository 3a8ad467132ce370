/**
 * The networking plane across hosts, on one cluster: three network
 * namespaces as hosts (the chaos harness's TestNetwork), each a real agent
 * with its own containerd (`host-cluster.ts`), set up once for these tests
 * in turn:
 *   - the overlay (`overlay-case.ts`): containers reach each other across
 *     hosts by overlay address; a forwarding entry deleted by hand is back;
 *     the image, imported on n1 only, was fetched by the others from a peer;
 *   - network policies (`policy-case.ts`): tenants apart both ways until a
 *     policy lets one in, only on its port; drift repaired;
 *   - egress policies (`egress-case.ts`);
 *   - service VIPs (`service-case.ts`): spread over instances on other
 *     hosts, policies in force through the VIP, drift repaired;
 *   - the routing mesh (`mesh-case.ts`): a published port answers on every
 *     host with the client's address kept, also through a host with no
 *     instance;
 *   - several networks of one tenant (`networks-case.ts`): an app on two
 *     networks reaches each side, apps on one side alone do not reach each
 *     other, DNS answers each asker's network's addresses;
 *   - a stateful container on an encrypted volume (`volume-case.ts`): its
 *     data kept across a kill, an agent restart, an update and a move,
 *     ENOSPC inside, none of it on the disk in clear, a backup restored.
 * Between tests every app and policy is deleted and their containers are
 * gone before the next deploys. HIVEMIND_NETWORK_CASES (comma-separated:
 * overlay, policy, egress, service, mesh, networks, volume) runs only those.
 *
 * Teardown, also on failure: agents stopped, then whatever is left killed
 * and removed (container processes, their namespaces and the warm pool's,
 * the hosts' namespaces with their bridges, VXLAN devices, rules, tables and
 * iptables chains, the data folder). Needs root, iproute2, iptables,
 * containerd, runc, the CNI plugins and busybox (and for the volume case
 * mkfs.ext4, tar, zstd, gocryptfs and fuse3); skipped otherwise, saying why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { skipReason } from '../../src/executor/containerd/test/harness.js';
import { missingPrerequisite } from '../network.js';
import { hostClusterSuite } from './host-cluster.js';
import { egressCase } from './egress-case.js';
import { meshCase } from './mesh-case.js';
import { networksCase } from './networks-case.js';
import { overlayCase } from './overlay-case.js';
import { policyCase } from './policy-case.js';
import { serviceCase } from './service-case.js';
import { volumeCase } from './volume-case.js';

const CASES = { overlay: overlayCase, policy: policyCase, egress: egressCase, service: serviceCase, mesh: meshCase, networks: networksCase, volume: volumeCase };

const chosen = (process.env.HIVEMIND_NETWORK_CASES ?? '').split(',').map((name) => name.trim()).filter((name) => name !== '');
const unknown = chosen.filter((name) => !(name in CASES));
if (unknown.length > 0) throw new Error(`HIVEMIND_NETWORK_CASES names no case ${unknown.join(', ')} (cases: ${Object.keys(CASES).join(', ')})`);
// The volume case needs what encrypted volumes need; without it, it alone is left out, saying why.
const volumeTools = ['mkfs.ext4', 'tar', 'zstd', 'gocryptfs', 'fusermount'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) ?? (existsSync('/dev/fuse') ? undefined : '/dev/fuse');
if (volumeTools !== undefined) console.log(`skipping the volume case: ${volumeTools} is missing (apt-get install e2fsprogs tar zstd gocryptfs fuse3)`);
const cases = Object.entries(CASES)
  .filter(([name]) => (chosen.length === 0 || chosen.includes(name)) && (name !== 'volume' || volumeTools === undefined))
  .map(([, entry]) => entry);

const unavailable =
  (await missingPrerequisite()) ?? skipReason() ?? (existsSync('/usr/lib/cni/bridge') ? null : 'the CNI plugins are not installed (containernetworking-plugins)');
const network = hostClusterSuite('network', {
  prefix: 'hmnet',
  hosts: 3,
  // The other nodes fetch it from n1 (the overlay case checks that they did).
  imageOnFirstNodeOnly: true,
  runcApps: cases.flatMap((entry) => entry.runcApps),
  sleepSeconds: cases.flatMap((entry) => entry.sleepSeconds),
  unavailable,
});
for (const entry of cases) network.test(entry.title, (cluster) => entry.body(cluster));
network.run();
