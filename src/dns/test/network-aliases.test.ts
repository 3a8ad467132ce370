// Aliases per network over real UDP on loopback: a DNS server in process,
// asked from sockets bound to loopback addresses that the test's tenant
// networks hold (127.1.16.0/20 stands in for front, 127.1.32.0/20 for
// back), so the server knows each querier by its source address as it knows
// a container's. An alias given on front answers a querier on front with the
// app's front address and is NXDOMAIN to one on back.
import { createSocket } from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import dns2 from 'dns2';
import type { DiscoveryInput } from '../../discovery/endpoints.js';
import type { App, Instance } from '../../state/types.js';
import { DnsServer } from '../server.js';
import { QUERY_TYPE } from '../zone.js';

const { Packet } = dns2;

function app(name: string, networks: string[], hivemind: App['versions'][number]['spec']['hivemind'] = {}): App {
  return { tenant: 'acme', name, version: 1, replicas: 1, versions: [{ version: 1, spec: { hivemind, networks } }], createdIndex: 1, updatedIndex: 1 } as unknown as App;
}

function instance(name: string, addresses: string[]): Instance {
  return {
    id: `acme.${name}.0.1`, tenant: 'acme', app: name, version: 1, slot: 0, node: 'n1', desired: 'running', createdIndex: 1,
    status: { state: 'running', reportedAt: 0, updatedIndex: 1, endpoint: { address: addresses[0]!, ...(addresses.length > 1 ? { addresses } : {}), ports: [{ target: 80, port: 80, protocol: 'tcp' }] } },
  };
}

const records: DiscoveryInput = {
  nodes: [{ id: 'n1', addresses: { api: '192.168.1.1:7070', peer: '192.168.1.1:7071', gossip: '192.168.1.1:7072' }, labels: {}, resources: {}, status: 'up', role: 'voter', joinedIndex: 1, lastSeenAt: 0, updatedIndex: 1 }],
  apps: [app('web', ['front', 'back'], { networkAliases: [{ network: 'front', aliases: ['www'] }] }), app('api', ['front']), app('db', ['back'])],
  instances: [instance('web', ['127.1.16.2', '127.1.32.2']), instance('api', ['127.1.16.3']), instance('db', ['127.1.32.3'])],
  networks: [
    { tenant: 'acme', name: 'front', cidr: '127.1.16.0/20', createdIndex: 1, slices: [] },
    { tenant: 'acme', name: 'back', cidr: '127.1.32.0/20', createdIndex: 1, slices: [] },
  ],
};

/** Asks the server at 127.0.0.1:`port` for `name` (A) from a socket bound to `source`. */
async function ask(port: number, name: string, source: string): Promise<InstanceType<typeof Packet>> {
  const packet = new Packet();
  packet.header = new Packet.Header({ id: 77, rd: 1 });
  packet.questions = [new Packet.Question(name, QUERY_TYPE.A, Packet.CLASS.IN)];
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(0, source, resolve));
    const reply = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${name} from ${source}`)), 5_000);
      socket.once('message', (bytes) => {
        clearTimeout(timer);
        resolve(bytes);
      });
    });
    socket.send(packet.toBuffer(), port, '127.0.0.1');
    return Packet.parse(await reply);
  } finally {
    socket.close();
  }
}

test('an alias on front answers a querier on front at the front address; NXDOMAIN to one on back alone', async () => {
  const server = new DnsServer({ host: '127.0.0.1', port: 0, upstreams: [], read: () => records, log: () => {} });
  const port = await server.listen();
  try {
    assert.equal((await ask(port, 'www.acme.hivemind', '127.1.16.3')).answers.map((record) => record.address), ['127.1.16.2'], 'api, on front');
    const fromBack = await ask(port, 'www.acme.hivemind', '127.1.32.3');
    assert.is(fromBack.header.rcode, 3, 'db, on back: NXDOMAIN');
    assert.equal(fromBack.answers, []);
    assert.equal((await ask(port, 'web.acme.hivemind', '127.1.32.3')).answers.map((record) => record.address), ['127.1.32.2'], "the app's own name still answers db, at web's back address");
  } finally {
    await server.close();
  }
});

test.run();
