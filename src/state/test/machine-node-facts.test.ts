// What a node reports about itself beyond its registration (node.ports) and what operators set on it (node.label); state version 4.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AGENT_LABELS_LABEL, STATE_VERSION_LABEL, type Command } from '../types.js';
import { Driver, registerNode } from './fixtures.js';

function atVersion4(): Driver {
  const driver = new Driver();
  for (const id of ['n1', 'n2']) {
    const command = registerNode(id) as Extract<Command, { type: 'node.register' }>;
    driver.ok({ ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: '4' } });
  }
  driver.ok({ type: 'cluster.version', version: 4 });
  return driver;
}

test('node.ports records the host ports, keeps them out of history, and refuses what is not a sorted list of ports', () => {
  const driver = atVersion4();
  const history = driver.machine.history().length;
  driver.ok({ type: 'node.ports', id: 'n1', tcp: [22, 7070], udp: [7072] });
  assert.equal(driver.machine.node('n1')!.hostPorts, { tcp: [22, 7070], udp: [7072] });
  assert.is(driver.machine.history().length, history, 'observed state: not in history');
  const cases: [Record<string, unknown>, string][] = [
    [{ type: 'node.ports', id: 'n1', tcp: [7070, 22], udp: [] }, 'tcp[1]'],
    [{ type: 'node.ports', id: 'n1', tcp: [0], udp: [] }, 'tcp[0]'],
    [{ type: 'node.ports', id: 'n1', tcp: [], udp: [70_000] }, 'udp[0]'],
    [{ type: 'node.ports', id: 'n1', tcp: Array.from({ length: 1025 }, (_, index) => index + 1), udp: [] }, 'tcp'],
    [{ type: 'node.ports', id: 'n9', tcp: [], udp: [] }, 'id'],
  ];
  for (const [command, field] of cases) assert.is(driver.refused(command).field, field, JSON.stringify(command).slice(0, 80));
  driver.ok({ type: 'node.remove', id: 'n2' });
  assert.is(driver.refused({ type: 'node.ports', id: 'n2', tcp: [], udp: [] }).code, 'conflict', 'a node that left reports nothing');
});

test('node.ports is refused before the cluster applies state version 4', () => {
  const driver = new Driver();
  driver.ok(registerNode('n1'));
  assert.is(driver.refused({ type: 'node.ports', id: 'n1', tcp: [], udp: [] }).code, 'cluster-version-too-old');
});

test('node.label sets and removes labels, in history; Hivemind\'s own and the agent\'s --label keys are refused, naming the field', () => {
  const driver = atVersion4();
  const n1 = registerNode('n1') as Extract<Command, { type: 'node.register' }>;
  driver.ok({ ...n1, labels: { ...n1.labels, rack: 'r1', [STATE_VERSION_LABEL]: '4', [AGENT_LABELS_LABEL]: 'rack' } });
  driver.ok({ type: 'node.label', id: 'n1', set: { disk: 'ssd', gpu: 'yes' }, remove: ['zone', 'absent'] });
  const labels = driver.machine.node('n1')!.labels;
  assert.equal({ disk: labels.disk, gpu: labels.gpu, zone: labels.zone, rack: labels.rack }, { disk: 'ssd', gpu: 'yes', zone: undefined, rack: 'r1' });
  assert.is(driver.machine.history()[0]!.summary, 'labels disk=ssd, gpu=yes, -zone, -absent');
  const cases: [Record<string, unknown>, string, string][] = [
    [{ type: 'node.label', id: 'n1', set: { 'hivemind.state-version': '9' }, remove: [] }, 'invalid-argument', 'set.hivemind.state-version'],
    [{ type: 'node.label', id: 'n1', set: {}, remove: ['rack'] }, 'conflict', 'remove[0]'],
    [{ type: 'node.label', id: 'n1', set: { disk: 'hdd' }, remove: ['disk'] }, 'invalid-argument', 'remove[0]'],
    [{ type: 'node.label', id: 'n1', set: { 'a b': 'c' }, remove: [] }, 'invalid-argument', 'set.a b'],
    [{ type: 'node.label', id: 'n9', set: { a: 'b' }, remove: [] }, 'not-found', 'id'],
  ];
  for (const [command, code, field] of cases) {
    const error = driver.refused(command);
    assert.equal([error.code, error.field], [code, field], JSON.stringify(command));
  }
  assert.is(new Driver().refused({ type: 'node.label', id: 'n1', set: {}, remove: [] }).code, 'cluster-version-too-old');
});

test.run();
