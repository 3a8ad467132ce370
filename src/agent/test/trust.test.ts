// The node's trust over a real data directory and state machine: a restart with the cluster's CA
// unchanged leaves the CA bundle and the TLS contexts alone (the state's PEM lacks the file's newline);
// a replica that applies CA records older than its material (a join answer from a cluster that rotated
// twice, a restart replaying its log) never trusts, nor renews from, an older CA on the way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeTrust } from '../trust.js';
import { DataDir } from '../../node/data-dir.js';
import { generateClusterKey } from '../../state/secrets.js';
import { Driver, registerNode } from '../../state/test/fixtures.js';
import type { Command, CommandResult, Envelope } from '../../state/types.js';
import { certificateSignedBy } from '../../security/certificates.js';

test('a restart with the same cluster CA rewrites no CA bundle and says nothing', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-trust-'));
  try {
    const driver = new Driver();
    const dataDir = new DataDir(directory);
    const clusterKey = generateClusterKey();
    const lines: string[] = [];
    const context = { nodeId: 'n1', dataDir, machine: driver.machine, clusterKey: () => clusterKey, addresses: () => ['127.0.0.1'], log: (line: string) => lines.push(line), now: () => driver.time };
    const first = new NodeTrust(context);
    await first.prepareBootstrap(clusterKey);
    assert.ok(await first.maybeStoreCa(async (command): Promise<CommandResult> => driver.ok(command)));
    assert.ok(driver.machine.ca() !== undefined, 'the CA is in the state');
    first.maybeSync();
    const bundle = join(directory, 'tls', 'ca.crt');
    const writtenMs = statSync(bundle).mtimeMs;
    lines.length = 0;

    const restarted = new NodeTrust(context);
    restarted.loadFromDisk();
    restarted.maybeSync();
    assert.equal(lines.filter((line) => line.startsWith('trusting')), [], 'nothing new to trust');
    assert.is(statSync(bundle).mtimeMs, writtenMs, 'the CA bundle was rewritten');
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

/** A trust for `nodeId` over its own data directory and `driver`'s state, on the wall clock. */
function trustOf(nodeId: string, directory: string, driver: Driver, clusterKey: Uint8Array, lines: string[] = []): NodeTrust {
  return new NodeTrust({ nodeId, dataDir: new DataDir(directory), machine: driver.machine, clusterKey: () => clusterKey, addresses: () => ['127.0.0.1'], log: (line) => lines.push(line), now: () => Date.now() });
}

/** The end of a rotation, as the leader's maybeFinishRotation commits it (here without waiting for the other nodes). */
function finishRotation(driver: Driver): Command {
  const ca = driver.machine.ca()!;
  return { type: 'ca.set', certificates: [ca.certificates[0]!], keySealed: ca.keySealed, keyNonce: ca.keyNonce };
}

/**
 * A cluster led by n1 through two CA rotations (A, then B, then C), n2 registered and down
 * throughout: the log's envelopes, and n1's trust, which holds a certificate of C.
 */
async function twoRotations(directory: string, clusterKey: Uint8Array): Promise<{ leader: NodeTrust; driver: Driver; caPems: string[] }> {
  const driver = new Driver();
  const leader = trustOf('n1', directory, driver, clusterKey);
  await leader.prepareBootstrap(clusterKey);
  assert.ok(await leader.maybeStoreCa(async (command): Promise<CommandResult> => driver.ok(command)));
  driver.ok(registerNode('n1'));
  driver.ok(registerNode('n2'));
  const caPems = [driver.machine.ca()!.certificates[0]!];
  for (let rotation = 0; rotation < 2; rotation++) {
    const started = await leader.rotationCommand();
    assert.ok(started.ok);
    driver.ok(started.ok ? started.command : finishRotation(driver));
    leader.maybeSync();
    const renewal = await leader.maybeRenew();
    assert.ok(renewal !== undefined, 'the leader renews from the new CA');
    driver.ok(renewal!);
    driver.ok(finishRotation(driver));
    leader.maybeSync();
    caPems.push(driver.machine.ca()!.certificates[0]!);
  }
  return { leader, driver, caPems };
}

/**
 * Applies `envelopes` to `replica` one at a time as the agent does (maybeSync on each ca.set's
 * apply), with the trust loop's step (maybeSync, maybeRenew) after each, as when the Raft driver
 * applies a backlog over several turns of the event loop; after every entry the node must trust
 * `newest` and hold a certificate of it.
 */
async function replay(trust: NodeTrust, replica: Driver, envelopes: { envelope: unknown }[], nodeId: string, newest: string): Promise<void> {
  const certificatePem = trust.credentials.current!.certificatePem;
  for (const { envelope } of envelopes) {
    replica.raw(envelope);
    if ((envelope as Envelope).command.type === 'ca.set') trust.maybeSync();
    trust.maybeSync();
    // What it returns may only record the certificate it holds (node.certificate of the same serial).
    await trust.maybeRenew();
    const material = trust.credentials.current!;
    const at = `after index ${replica.index} (${(envelope as Envelope).command.type})`;
    assert.ok(material.certificatePem === certificatePem, `${nodeId} renewed its certificate ${at}: it needs none`);
    assert.ok(material.caPems.some((pem) => pem.trim() === newest.trim()), `${nodeId} stopped trusting the newest CA ${at}`);
    assert.ok(certificateSignedBy(material.certificatePem, [newest], nodeId), `${nodeId}'s certificate is not of the newest CA ${at}`);
  }
}

test('a node that joins a cluster that rotated twice keeps the answer\'s CA while its replica applies the rotations', async () => {
  const leaderDirectory = mkdtempSync(join(tmpdir(), 'hivemind-trust-'));
  const joinerDirectory = mkdtempSync(join(tmpdir(), 'hivemind-trust-'));
  try {
    const clusterKey = generateClusterKey();
    const { leader, driver, caPems } = await twoRotations(leaderDirectory, clusterKey);
    const newest = caPems[2]!;
    // The joiner's replica holds the log up to n2's registration (it was down since), under CA A.
    const registered = driver.envelopes.findIndex(({ envelope }) => (envelope as Envelope).command.type === 'node.register' && (envelope as { command: { id: string } }).command.id === 'n2') + 1;
    const replica = new Driver();
    for (const { envelope } of driver.envelopes.slice(0, registered)) replica.raw(envelope);
    assert.equal(replica.machine.ca()!.certificates, [caPems[0]]);
    const joiner = trustOf('n2', joinerDirectory, replica, clusterKey);
    const answer = await leader.signJoiner(await joiner.prepareJoin(), 'n2', ['127.0.0.1']);
    assert.equal(answer.caPems, [newest]);
    joiner.completeJoin(answer);
    await replay(joiner, replica, driver.envelopes.slice(registered), 'n2', newest);
    assert.equal(joiner.credentials.current!.caPems, [newest]);
  } finally {
    rmSync(leaderDirectory, { recursive: true, force: true });
    rmSync(joinerDirectory, { recursive: true, force: true });
  }
});

test('a restart that replays two rotations from its log keeps the certificate of the newest CA throughout', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-trust-'));
  try {
    const clusterKey = generateClusterKey();
    const { driver, caPems } = await twoRotations(directory, clusterKey);
    const replica = new Driver();
    const restarted = trustOf('n1', directory, replica, clusterKey);
    restarted.loadFromDisk();
    await replay(restarted, replica, driver.envelopes, 'n1', caPems[2]!);
    assert.equal(restarted.credentials.current!.caPems, [caPems[2]]);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test.run();
