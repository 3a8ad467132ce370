// The node's trust over a real data directory and state machine: a restart with the cluster's CA
// unchanged leaves the CA bundle and the TLS contexts alone (the state's PEM lacks the file's newline).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeTrust } from '../trust.js';
import { DataDir } from '../../node/data-dir.js';
import { generateClusterKey } from '../../state/secrets.js';
import { Driver } from '../../state/test/fixtures.js';
import type { CommandResult } from '../../state/types.js';

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

test.run();
