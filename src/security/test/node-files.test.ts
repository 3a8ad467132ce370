// confineDataDir on a real folder: the data directory becomes 0711, every
// top-level entry loses its group and other bits (whatever umask made it),
// volumes/ and each tenant folder in it stay traversable, containerd/ and
// symbolic links are left alone, and a second run changes nothing.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closedAncestor, confineDataDir } from '../node-files.js';

const modeOf = (path: string): number => statSync(path).mode & 0o7777;

test('the data directory is traversable only, its entries private, volumes traversable, containerd untouched', () => {
  const root = mkdtempSync(join(tmpdir(), 'hivemind-node-files-'));
  try {
    const dataDir = join(root, 'data');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    writeFileSync(join(dataDir, 'cluster.key'), 'k', { mode: 0o644 });
    chmodSync(join(dataDir, 'cluster.key'), 0o644);
    mkdirSync(join(dataDir, 'raft'));
    chmodSync(join(dataDir, 'raft'), 0o755);
    writeFileSync(join(dataDir, 'raft', 'LOG'), 'entries');
    mkdirSync(join(dataDir, 'volumes', 'acme'), { recursive: true });
    chmodSync(join(dataDir, 'volumes'), 0o700);
    chmodSync(join(dataDir, 'volumes', 'acme'), 0o755);
    mkdirSync(join(dataDir, 'containerd'));
    chmodSync(join(dataDir, 'containerd'), 0o711);
    writeFileSync(join(root, 'outside'), 'x', { mode: 0o644 });
    chmodSync(join(root, 'outside'), 0o644);
    symlinkSync(join(root, 'outside'), join(dataDir, 'link'));

    const first = confineDataDir(dataDir);
    assert.is(modeOf(dataDir), 0o711);
    assert.is(modeOf(join(dataDir, 'cluster.key')), 0o600);
    assert.is(modeOf(join(dataDir, 'raft')), 0o700);
    assert.is(modeOf(join(dataDir, 'volumes')), 0o711);
    assert.is(modeOf(join(dataDir, 'volumes', 'acme')), 0o711);
    assert.is(modeOf(join(dataDir, 'containerd')), 0o711, 'containerd keeps its own modes');
    assert.is(modeOf(join(root, 'outside')), 0o644, 'a symbolic link\'s target is not changed');
    assert.equal(first.narrowed.sort(), [dataDir, join(dataDir, 'cluster.key'), join(dataDir, 'raft'), join(dataDir, 'volumes'), join(dataDir, 'volumes', 'acme')].sort());
    assert.equal(confineDataDir(dataDir).narrowed, [], 'a second run changes nothing');
    assert.equal(confineDataDir(join(root, 'missing')).narrowed, [], 'a missing data directory is fine');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('closedAncestor finds the first folder others may not pass through, from the root down', () => {
  const root = mkdtempSync(join(tmpdir(), 'hivemind-node-files-'));
  try {
    const deep = join(root, 'a', 'b', 'c');
    mkdirSync(deep, { recursive: true });
    for (const folder of [join(root, 'a'), join(root, 'a', 'b'), deep]) chmodSync(folder, 0o711);
    chmodSync(root, 0o700);
    assert.equal(closedAncestor(deep), { path: root, mode: 0o700 });
    chmodSync(root, 0o711);
    chmodSync(join(root, 'a', 'b'), 0o750);
    assert.equal(closedAncestor(deep), { path: join(root, 'a', 'b'), mode: 0o750 });
    chmodSync(join(root, 'a', 'b'), 0o751);
    assert.is(closedAncestor(deep), undefined);
    assert.is(closedAncestor(join(deep, 'not-yet')), undefined, 'a folder not made yet is no obstacle');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
