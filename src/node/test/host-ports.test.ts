// The ports a node's host listens on: /proc/net parsing, and the report (two scans, instances' own ports out, Hivemind's in, bounded).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { changedHostPorts, hostPortsReport, instanceHostPorts, listeningPorts, ReportAllowance, sameHostPorts } from '../host-ports.js';
import { HOST_PORTS_MAX, type AppSpec, type Instance } from '../../state/types.js';

const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3333 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F9`;
const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1BB6 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0`;
const udp = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:1B85 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5555 2 0000000000000000 0
  101: 0100007F:C350 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 6666 2 0000000000000000 0`;

test('listening ports: TCP in LISTEN, UDP bound without a remote end; connected sockets, headers and cut lines skipped', () => {
  assert.equal([...listeningPorts(tcp, 'tcp')], [8080, 22]);
  assert.equal([...listeningPorts(tcp6, 'tcp')], [7094]);
  assert.equal([...listeningPorts(udp, 'udp')], [7045]);
  assert.equal([...listeningPorts('', 'tcp')], []);
});

test('the report: ports seen in two scans in a row, less those instances hold, plus Hivemind\'s own; sorted and bounded', () => {
  const report = hostPortsReport({
    scans: [{ tcp: new Set([8080, 22, 40000, 31701]), udp: new Set([53]) }, { tcp: new Set([8080, 22, 31701]), udp: new Set() }],
    own: { tcp: [7070, 7071], udp: [7072] },
    instances: { tcp: new Set([31701]), udp: new Set() },
  });
  assert.equal(report, { tcp: [22, 7070, 7071, 8080], udp: [7072] }, '40000 seen once, 53/udp seen once, 31701 an instance\'s');
  const many = new Set(Array.from({ length: HOST_PORTS_MAX + 50 }, (_, index) => index + 1));
  const bounded = hostPortsReport({ scans: [{ tcp: many, udp: new Set() }, { tcp: many, udp: new Set() }], own: { tcp: [65_000], udp: [] }, instances: { tcp: new Set(), udp: new Set() } });
  assert.is(bounded.tcp.length, HOST_PORTS_MAX);
  assert.ok(bounded.tcp.includes(65_000), 'own ports are kept first');
  assert.is(bounded.tcp[0], 1);
  assert.ok(sameHostPorts(report, { tcp: [22, 7070, 7071, 8080], udp: [7072] }));
  assert.not.ok(sameHostPorts(undefined, report));
  assert.not.ok(sameHostPorts(report, { tcp: [22], udp: [7072] }));
});

test('ports instances hold: published ports, and a process app\'s endpoint ports (a container\'s are on its own address)', () => {
  const spec = (overrides: Partial<AppSpec>): AppSpec => ({ ports: [], ...overrides }) as AppSpec;
  const instance = (app: string, ports: number[]): Instance =>
    ({ id: `default.${app}.0.1`, tenant: 'default', app, version: 1, status: { state: 'running', reportedAt: 0, updatedIndex: 0, endpoint: { address: '10.0.0.2', ports: ports.map((port) => ({ target: port, port, protocol: 'tcp' })) } } }) as unknown as Instance;
  const specs: Record<string, AppSpec> = {
    process: spec({ command: ['serve'], ports: [{ target: 80, published: 31701, protocol: 'tcp' }] }),
    container: spec({ image: 'nginx', ports: [{ target: 53, published: 5353, protocol: 'udp' }] }),
  };
  const held = instanceHostPorts([instance('process', [45000]), instance('container', [80])], (each) => specs[each.app]);
  assert.equal([[...held.tcp].sort(), [...held.udp]], [[31701, 45000], [5353]]);
});

test('changed ports: those in one report and not the other, either way; all of them against no report', () => {
  const changed = changedHostPorts({ tcp: [22, 80], udp: [53] }, { tcp: [22, 443], udp: [53] });
  assert.equal([...changed.tcp].sort(), [443, 80]);
  assert.equal([...changed.udp], []);
  assert.equal([...changedHostPorts(undefined, { tcp: [22], udp: [53] }).udp], [53]);
});

test('the report allowance: a burst at once, then one per refill; a full bucket gains nothing while it waits; a clock gone back gains nothing', () => {
  const allowance = new ReportAllowance({ burst: 2, refillMs: 1000 });
  assert.ok(allowance.take(10_000));
  assert.ok(allowance.take(10_000));
  assert.not.ok(allowance.take(10_999), 'the burst is spent');
  assert.ok(allowance.take(11_000), 'one refill after refillMs');
  assert.not.ok(allowance.take(11_500));
  assert.ok(allowance.take(12_000));
  assert.ok(allowance.take(50_000), 'a long wait refills to the burst');
  assert.ok(allowance.take(50_000));
  assert.not.ok(allowance.take(50_000), 'never more than the burst');
  assert.not.ok(allowance.take(5_000), 'a clock gone back gains nothing');
  assert.not.ok(allowance.take(5_999));
  assert.ok(allowance.take(6_000), 'counted again from where the clock went back');
  assert.throws(() => new ReportAllowance({ burst: 0, refillMs: 1000 }), /burst of at least 1/);
});

test.run();
