// The host-port report's step over a real state machine, /proc text handed in: confirmed by a second scan,
// sent only on change, Hivemind's own ports always in, an instance's own ports out, nothing before state version 4,
// paced after a burst unless an app publishes a changed port.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HostPortReport } from '../host-port-report.js';
import { HOST_PORTS_REPORT_REFILL_MS, HOST_PORTS_REPORTS_BURST } from '../../node/host-ports.js';
import { appSpec, Driver, registerNode } from '../../state/test/fixtures.js';
import { STATE_VERSION_LABEL, type Command, type CommandResult } from '../../state/types.js';

const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const listening = (ports: number[]): string => header + ports.map((port, line) => `   ${line}: 00000000:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n`).join('');

function world(version: number): { driver: Driver; report: HostPortReport; sent: Command[]; setTcp: (ports: number[]) => void; advance: (ms: number) => void } {
  const driver = new Driver();
  const command = registerNode('n1') as Extract<Command, { type: 'node.register' }>;
  driver.ok({ ...command, labels: { ...command.labels, [STATE_VERSION_LABEL]: String(version) } });
  if (version >= 4) driver.ok({ type: 'cluster.version', version: 4 });
  let tcp = listening([]);
  const sent: Command[] = [];
  let nowMs = 1_000_000;
  const report = new HostPortReport({
    nodeId: 'n1',
    machine: driver.machine,
    ownRecord: () => driver.machine.node('n1'),
    ownPorts: () => ({ tcp: [7070, 7071], udp: [7072] }),
    submit: async (submitted): Promise<CommandResult> => {
      sent.push(submitted);
      return driver.ok(submitted);
    },
    logOnce: () => {},
    nowMs: () => nowMs,
    readProc: async (path) => (path.endsWith('/tcp') ? tcp : ''),
  });
  return { driver, report, sent, setTcp: (ports) => (tcp = listening(ports)), advance: (ms) => (nowMs += ms) };
}

test('a port is reported once two scans saw it, with Hivemind\'s own; an unchanged report is not sent again', async () => {
  const { driver, report, sent, setTcp } = world(4);
  setTcp([22, 8080]);
  await report.step();
  assert.equal(sent, [], 'the first scan has nothing to confirm it');
  await report.step();
  assert.equal(driver.machine.node('n1')!.hostPorts, { tcp: [22, 7070, 7071, 8080], udp: [7072] });
  await report.step();
  assert.is(sent.length, 1, 'nothing changed: nothing sent');
  setTcp([22]);
  await report.step();
  assert.equal(driver.machine.node('n1')!.hostPorts!.tcp, [22, 7070, 7071], 'a port no longer listening leaves at once');
});

test('a port an instance placed on the node publishes is its own, not a host process\'s', async () => {
  const { driver, report, setTcp } = world(4);
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1, ports: [{ target: 80, published: 8080, protocol: 'tcp' }] }) });
  driver.ok({ type: 'instance.place', placements: [{ id: 'default.web.0.1', node: 'n1' }] });
  setTcp([22, 8080]);
  await report.step();
  await report.step();
  assert.equal(driver.machine.node('n1')!.hostPorts!.tcp, [22, 7070, 7071]);
});

test('a busy host\'s changing ports: a burst at once, then one report per refill; a port an app publishes at once, always', async () => {
  const { driver, report, sent, setTcp, advance } = world(4);
  let port = 40_000;
  // Each change is confirmed by a second scan: two steps per change.
  const churn = async (): Promise<void> => {
    setTcp([22, ++port]);
    await report.step();
    await report.step();
  };
  await churn();
  assert.is(sent.length, 1, 'the first report');
  for (let change = 0; change < HOST_PORTS_REPORTS_BURST; change++) await churn();
  assert.is(sent.length, 1 + HOST_PORTS_REPORTS_BURST, 'the burst went at once');
  await churn();
  assert.is(sent.length, 1 + HOST_PORTS_REPORTS_BURST, 'past the burst: held back');
  advance(HOST_PORTS_REPORT_REFILL_MS - 1);
  await report.step();
  assert.is(sent.length, 1 + HOST_PORTS_REPORTS_BURST, 'still held back just before the refill');
  advance(1);
  await report.step();
  assert.is(sent.length, 2 + HOST_PORTS_REPORTS_BURST, 'the held-back change goes out with the refill');
  assert.equal(driver.machine.node('n1')!.hostPorts!.tcp, [22, 7070, 7071, port]);
  driver.ok({ type: 'app.deploy', spec: appSpec({ replicas: 1, ports: [{ target: 80, published: 9090, protocol: 'tcp' }] }) });
  setTcp([22, port, 9090]);
  await report.step();
  await report.step();
  assert.is(sent.length, 3 + HOST_PORTS_REPORTS_BURST, 'a port an app publishes: at once, with no allowance left');
  assert.equal(driver.machine.node('n1')!.hostPorts!.tcp, [22, 7070, 7071, 9090, port]);
});

test('nothing is sent before the cluster applies state version 4', async () => {
  const { report, sent, setTcp } = world(3);
  setTcp([22]);
  await report.step();
  await report.step();
  assert.equal(sent, []);
});

test.run();
