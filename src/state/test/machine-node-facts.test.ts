// What a node reports about itself beyond its registration: node.ports (state version 4).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STATE_VERSION_LABEL, type Command } from '../types.js';
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

test.run();
