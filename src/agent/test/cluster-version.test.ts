// One real node process, then a second joining it: each registers with the
// state version its code applies (the hivemind.state-version label), the
// leader raises the cluster version to it as soon as every member advertises
// it (a cluster.version entry in the history), and entries from then on are
// written in it. The rolling upgrade from the previous release is
// `npm run chaos:upgrade` (too slow for the suite).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STATE_VERSION_LABEL } from '../../state/types.js';
import { CLUSTER_VERSION_FLOOR, STATE_VERSION } from '../../state/version.js';
import { TestCluster, eventually } from './harness.js';

const cluster = new TestCluster(50);

test.after(async () => {
  await cluster.cleanup();
});

interface HistoryLine {
  command: string;
  target: string;
  summary: string;
}

test('a new cluster runs at this code\'s state version, and a joining node advertises it', cluster.withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  const raised = await eventually('the cluster version raised', async () => {
    const answer = await n1.request('GET', '/v1/history');
    return (answer.body.history as HistoryLine[]).find((line) => line.command === 'cluster.version');
  });
  assert.equal({ target: raised.target, summary: raised.summary }, { target: 'cluster', summary: `version ${CLUSTER_VERSION_FLOOR} → ${STATE_VERSION}` });
  const n2 = await cluster.join('n2', n1);
  const nodes = await eventually('both records with their state version', async () => {
    const answer = await n2.request('GET', '/v1/nodes');
    const records = answer.body.nodes as { id: string; labels: Record<string, string> }[];
    return records.length === 2 && records.every((record) => record.labels[STATE_VERSION_LABEL] !== undefined) ? records : undefined;
  });
  for (const record of nodes) assert.is(record.labels[STATE_VERSION_LABEL], String(STATE_VERSION), record.id);
  const history = (await n1.request('GET', '/v1/history')).body.history as HistoryLine[];
  assert.is(history.filter((line) => line.command === 'cluster.version').length, 1, 'raised once');
}));

test.run();
