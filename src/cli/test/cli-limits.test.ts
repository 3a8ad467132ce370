/**
 * Limits a node cannot enforce are refused at deploy (issue 18): a real node
 * on a host whose cgroups lack the memory controller (the agent runs in a
 * mount namespace where the v1 memory hierarchy is unmounted: what a host
 * without it looks like to the agent) says so in its registration, and a
 * deploy asking for a memory limit gets a 400 naming the service and the
 * field as written; a CPU limit, which it can enforce, deploys.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LIMITS_LABEL, type NodeRecord } from '../../state/types.js';
import { startAgent, type AgentProcess } from './agent-process.js';
import { runCli, type CliResult } from './run-cli.js';

const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-limits-'));
let agent: AgentProcess | undefined;

/** The v1 memory hierarchy's mount point on this host, if there is one to hide. */
function memoryHierarchy(): string | undefined {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, point, type, options] = line.split(' ');
    if (type === 'cgroup' && options?.split(',').includes('memory')) return point;
  }
  return undefined;
}

function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['--mount', '--propagation', 'private', '--', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test.after(async () => {
  await agent?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function hm(args: string[]): Promise<CliResult> {
  return runCli(['--addr', agent!.address, '--token', agent!.token, ...args]);
}

test('a memory limit no node can enforce is refused at deploy, naming the service and the field; a CPU limit deploys', async () => {
  const memory = memoryHierarchy();
  if (memory === undefined || !canUnshare()) {
    // This host has no v1 memory hierarchy to hide (or no mount namespaces): the refusal cannot be made real here.
    console.log('skipped: needs a cgroup v1 memory hierarchy and unshare --mount (root)');
    return;
  }
  agent = await startAgent({ wrap: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `umount ${memory} && exec "$0" "$@"`] });
  const nodes = JSON.parse((await hm(['nodes', '--json'])).stdout) as { nodes: NodeRecord[] };
  assert.is(nodes.nodes[0]!.labels[LIMITS_LABEL], 'cpu', 'the node says it enforces CPU limits only');
  const file = join(scratch, 'compose.yaml');
  writeFileSync(file, 'services:\n  worker:\n    command: ["sleep", "1000"]\n    deploy:\n      resources:\n        limits: { memory: 64M }\n');
  const refused = await hm(['deploy', '-f', file, '--detach']);
  assert.is(refused.status, 1, refused.stderr);
  assert.match(refused.stderr, 'cannot deploy "worker": no node of the cluster can enforce its memory limit (services.worker.deploy.resources.limits.memory)');
  const apps = JSON.parse((await hm(['apps', '--json'])).stdout) as { apps: unknown[] };
  assert.equal(apps.apps, [], 'nothing was deployed');
  writeFileSync(file, 'services:\n  worker:\n    command: ["sleep", "1000"]\n    deploy:\n      resources:\n        limits: { cpus: "0.5" }\n');
  const cpu = await hm(['deploy', '-f', file, '--timeout', '1m']);
  assert.is(cpu.status, 0, cpu.stderr);
  assert.is((await hm(['delete', 'worker'])).status, 0);
});

test.run();
