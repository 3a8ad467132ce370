// What the volume keeper decides without touching a disk: when a volume's
// usage is worth a new `volume.report`, and how snapshots are named.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isSnapshotId, snapshotIdOf } from '../local-volumes.js';
import { REPORT_CHANGE_BYTES_MIN, reportDue } from '../volume-keeper.js';

test('a usage is reported first, then again only once it changed by 1 MiB or 1 %', () => {
  assert.ok(reportDue(undefined, 0), 'never reported');
  assert.not.ok(reportDue(10 * REPORT_CHANGE_BYTES_MIN, 10 * REPORT_CHANGE_BYTES_MIN + 4096));
  assert.ok(reportDue(10 * REPORT_CHANGE_BYTES_MIN, 11 * REPORT_CHANGE_BYTES_MIN), 'grew by 1 MiB');
  assert.ok(reportDue(10 * REPORT_CHANGE_BYTES_MIN, 9 * REPORT_CHANGE_BYTES_MIN), 'shrank by 1 MiB');
  assert.ok(reportDue(1000, 1010), '1 % of a small volume');
  assert.not.ok(reportDue(1000, 1009));
  assert.ok(reportDue(0, 1), 'from nothing, any change');
});

test('a snapshot is named by its UTC time to the millisecond; nothing else passes as an id', () => {
  const id = snapshotIdOf(Date.UTC(2026, 11, 5, 6, 30, 0, 123));
  assert.is(id, '20261205T063000123Z');
  assert.ok(isSnapshotId(id));
  for (const bad of ['', '../x', '20261205T063000123Z/..', '20261205T063000Z', '20261205t063000123z', `${id}.ext4`]) assert.not.ok(isSnapshotId(bad), bad);
});

test.run();
