// FileWatch on a real directory (inotify): each step waits for the change to be heard, never for a time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileWatch } from '../file-watch.js';
import { nodeNetworkPath, writeNodeNetwork } from '../node-network.js';

/** A watch whose changes can be awaited one at a time. */
function watched(path: string): { watch: FileWatch; changed: () => Promise<void> } {
  let heard = 0;
  let waiter: (() => void) | undefined;
  const watch = new FileWatch({
    path,
    onChange: () => {
      heard++;
      waiter?.();
    },
  });
  const changed = async (): Promise<void> => {
    const before = heard;
    await new Promise<void>((resolve) => {
      waiter = resolve;
      if (heard > before) resolve();
    });
  };
  return { watch, changed };
}

test('hears the directory made, the file replaced by rename, the directory removed and made again', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'file-watch-'));
  try {
    const { watch, changed } = watched(nodeNetworkPath(dataDir));
    assert.ok(watch.watching, 'the parent is watched while the directory does not exist');
    let next = changed();
    mkdirSync(join(dataDir, 'network'));
    await next;
    next = changed();
    writeNodeNetwork(dataDir, { state: 'pending' });
    await next;
    next = changed();
    writeNodeNetwork(dataDir, { state: 'ready', bridge: 'hm0', subnet: '10.0.1.0/24', gateway: '10.0.1.1', clusterCidr: '10.0.0.0/16', mtu: 1450 });
    await next;
    next = changed();
    rmSync(join(dataDir, 'network'), { recursive: true });
    await next;
    assert.ok(watch.watching);
    next = changed();
    writeNodeNetwork(dataDir, { state: 'pending' });
    await next;
    watch.close();
    assert.not.ok(watch.watching, 'closed');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('other files in the directory are not the file', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'file-watch-'));
  try {
    mkdirSync(join(dataDir, 'network'));
    const { watch, changed } = watched(nodeNetworkPath(dataDir));
    let heardOther = false;
    const other = new FileWatch({ path: join(dataDir, 'network', 'other.json'), onChange: () => (heardOther = true) });
    const next = changed();
    writeFileSync(join(dataDir, 'network', 'unrelated'), 'x');
    writeNodeNetwork(dataDir, { state: 'pending' });
    await next;
    // Events arrive in order: the unrelated write came first and was not the file's change.
    assert.not.ok(heardOther, 'a watch of another file does not hear this one');
    watch.close();
    other.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.run();
