/**
 * `hivemind join`, `leave` and `recover` against real nodes started through
 * the CLI: a second node joins the first, shows up in `nodes`, tells in
 * `status` the term and leader it found at its join, leaves (and
 * its agent exits); then the first node, stopped, is recovered as a cluster
 * of one and serves again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { startAgent, type AgentProcess } from './agent-process.js';
import { runCli } from './run-cli.js';

const running: AgentProcess[] = [];
const dataDirs: string[] = [];

test.after(async () => {
  for (const agent of running) await agent.stop();
  for (const dataDir of dataDirs) rmSync(dataDir, { recursive: true, force: true });
});

interface NodeView {
  id: string;
  status: string;
  role: string;
}

async function nodesOf(agent: AgentProcess): Promise<NodeView[]> {
  const result = await runCli(['--addr', agent.address, '--token', agent.token, 'nodes', '--json']);
  assert.is(result.status, 0, result.stderr);
  return (JSON.parse(result.stdout) as { nodes: NodeView[] }).nodes;
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('join without a token is a usage error, before anything starts', async () => {
  const result = await runCli(['join', '127.0.0.1:1']);
  assert.is(result.status, 2);
  assert.match(result.stderr, /^hivemind: joining needs the join token: pass --token or set HIVEMIND_TOKEN/);
});

test('a second node joins with `hivemind join`, then leaves with `hivemind leave`', async () => {
  const first = await startAgent({ name: 'n1' });
  running.push(first);
  const second = await startAgent({ name: 'n2', join: { seed: first.peerAddress, token: first.token } });
  running.push(second);

  const nodes = await until(() => nodesOf(first), (list) => list.some((node) => node.id === 'n2'), 'n2 in the node list');
  assert.equal(nodes.map((node) => node.id).sort(), ['n1', 'n2']);
  const viaSecond = await runCli(['--addr', second.address, '--token', second.token, 'status', '--json']);
  assert.is(viaSecond.status, 0, viaSecond.stderr);
  assert.is((JSON.parse(viaSecond.stdout) as { node: string; leader: string }).node, 'n2');
  // n2's own election log: the term it found at its join, led by n1; `status` shows it under the fields.
  const seenBySecond = (JSON.parse(viaSecond.stdout) as { term: number; elections: { term: number; leader: string; reason: string }[] }).elections;
  assert.equal(seenBySecond.map((election) => [election.leader, election.reason]), [['n1', 'start']], viaSecond.stdout);
  const shown = await runCli(['--addr', second.address, '--token', second.token, 'status']);
  assert.match(shown.stdout, /^recent elections \(as n2 saw them\)\nTERM\s+LEADER\s+WHY\s+SEEN\n\d+\s+n1\s+start\s+\d+[smhd] ago$/m, shown.stdout);

  const left = await runCli(['--addr', second.address, '--token', second.token, 'leave']);
  assert.is(left.status, 0, left.stderr);
  assert.is(left.stdout, 'node n2 left the cluster\n');
  assert.is(await second.exited, 0, second.output());
  await until(() => nodesOf(first), (list) => list.find((node) => node.id === 'n2')?.status === 'left', 'n2 marked left');
});

test('--insecure-api on: the API in plain HTTP, and every line at start says so', async () => {
  const agent = await startAgent({ name: 'plain', insecureApi: true });
  running.push(agent);
  assert.match(agent.address, /^http:\/\//);
  const status = await runCli(['--addr', agent.address, '--token', agent.token, 'status', '--json']);
  assert.is(status.status, 0, status.stderr);
  const lines = agent.output().split('\n');
  const starting = lines.find((line) => / starting \(bootstrap\)/.test(line));
  const serving = lines.find((line) => / serving: API on /.test(line));
  const api = lines.find((line) => / api: serving PLAIN HTTP/.test(line));
  for (const line of [starting, serving, api]) assert.match(line ?? '(missing)', /PLAIN HTTP.*\(--insecure-api\)/, agent.output());
  assert.match(serving!, `API on http://`);
  // An HTTPS client gets no answer from it.
  const overTls = await runCli(['--addr', agent.address.replace('http://', 'https://'), '--token', agent.token, 'status']);
  assert.is(overTls.status, 1);
  assert.match(overTls.stderr, /^hivemind: cannot (trust|verify|reach) the node at https:/);
  await agent.stop();
});

test('recover --force-new-cluster on a stopped node, then it serves again', async () => {
  const first = running[0]!;
  assert.is(await first.stop({ keepDataDir: true }), 0, first.output());
  running.splice(0, 1);
  dataDirs.push(first.dataDir);
  const recovered = await runCli(['recover', '--force-new-cluster', '--data-dir', first.dataDir]);
  assert.is(recovered.status, 0, recovered.stderr);
  assert.match(recovered.stdout, /^node n1 is now a cluster of one \(configuration at index \d+, term \d+\)$/m);
  const restarted = await startAgent({ name: 'n1', restart: { dataDir: first.dataDir, token: first.token } });
  running.push(restarted);
  const status = await runCli(['--addr', restarted.address, '--data-dir', first.dataDir, 'status', '--json']);
  assert.is(status.status, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as { voters: string[] }).voters, ['n1']);
});

test.run();
