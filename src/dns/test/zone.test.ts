import { test } from 'uvu';
import * as assert from 'uvu/assert';
import dns2 from 'dns2';
import { directoryOf, type DiscoveryInput } from '../../discovery/endpoints.js';
import type { App, HivemindSpec, Instance, InstanceState, NodeRecord } from '../../state/types.js';
import { appNamesOf } from '../names.js';
import { encodeZoneReply } from '../encode.js';
import { ReplyCache } from '../reply-cache.js';
import { DnsServer } from '../server.js';
import { errorReply, parseQuery, patchReply, replyLayout, rotateAddressAnswers, truncateReply, withoutOpt, RCODE, UDP_PAYLOAD_BYTES_CLASSIC } from '../wire.js';
import { answerQuestion, inZone, QUERY_TYPE } from '../zone.js';

const { Packet } = dns2;

function node(id: string, host: string, status: NodeRecord['status'] = 'up'): NodeRecord {
  return { id, addresses: { api: `${host}:7070`, peer: `${host}:7071`, gossip: `${host}:7072` }, labels: {}, resources: {}, status, role: 'voter', joinedIndex: 1, lastSeenAt: 0, updatedIndex: 1 };
}

function app(tenant: string, name: string, hivemind: HivemindSpec = {}): App {
  return { tenant, name, version: 1, replicas: 2, versions: [{ version: 1, spec: { hivemind } }], createdIndex: 1, updatedIndex: 1 } as unknown as App;
}

function instance(tenant: string, appName: string, slot: number, serial: number, options: { state?: InstanceState; address?: string; node?: string; desired?: 'running' | 'stopped'; port?: number } = {}): Instance {
  const address = options.address;
  return {
    id: `${tenant}.${appName}.${slot}.${serial}`,
    tenant,
    app: appName,
    version: 1,
    slot,
    node: options.node ?? 'n1',
    desired: options.desired ?? 'running',
    status: {
      state: options.state ?? 'running',
      reportedAt: 0,
      updatedIndex: 1,
      ...(address !== undefined ? { endpoint: { address, ports: [{ target: 80, port: options.port ?? 80, protocol: 'tcp' as const }] } } : {}),
    },
    createdIndex: 1,
  };
}

/** acme/web: two serving containers, one unhealthy, one retired; acme/db: nothing serving; globex/api: one process app on n2. */
function input(): DiscoveryInput {
  return {
    nodes: [node('n1', '192.168.1.1'), node('n2', '192.168.1.2'), node('n3', '192.168.1.3', 'down')],
    apps: [app('acme', 'web'), app('acme', 'db'), app('globex', 'api')],
    instances: [
      instance('acme', 'web', 0, 3, { address: '10.88.0.3' }),
      instance('acme', 'web', 1, 4, { address: '10.88.0.4', state: 'healthy' }),
      instance('acme', 'web', 2, 5, { address: '10.88.0.5', state: 'unhealthy' }),
      instance('acme', 'web', 0, 1, { address: '10.88.0.1', desired: 'stopped' }),
      instance('acme', 'web', 3, 6, { address: '10.88.0.6', node: 'n3' }),
      instance('acme', 'db', 0, 1, { state: 'starting' }),
      instance('globex', 'api', 0, 1, { address: '192.168.1.2', node: 'n2', port: 31000 }),
    ],
  };
}

function addresses(answer: ReturnType<typeof answerQuestion>): string[] {
  return answer.answers.map((record) => ('address' in record ? record.address : record.type));
}

test('an app name answers the addresses of its serving instances only', () => {
  const directory = directoryOf(input());
  const answer = answerQuestion(directory, { name: 'web.acme.hivemind', type: QUERY_TYPE.A });
  assert.is(answer.rcode, 'NOERROR');
  assert.equal(addresses(answer), ['10.88.0.3', '10.88.0.4'], 'not the unhealthy one, the retired one, nor the one on a down node');
  assert.equal(answer.answers.map((record) => record.ttl), [1, 1]);
  assert.equal(addresses(answerQuestion(directory, { name: 'WEB.Acme.hivemind.', type: QUERY_TYPE.A })), [], 'the server lowercases; the zone takes names as given');
});

test('per network: a querier on tenant networks sees the apps on its networks, each at its address there; an app it shares none with is NXDOMAIN', () => {
  const onNetworks = (tenant: string, name: string, networks: string[] | undefined, vip?: string): App =>
    ({ tenant, name, version: 1, replicas: 1, versions: [{ version: 1, spec: { hivemind: {}, ...(networks ? { networks } : {}) } }], createdIndex: 1, updatedIndex: 1, ...(vip ? { vip } : {}) }) as unknown as App;
  const twoAddresses = instance('acme', 'web', 0, 1, { address: '10.224.16.2' });
  twoAddresses.status.endpoint!.addresses = ['10.224.16.2', '10.224.32.2'];
  const records: DiscoveryInput = {
    nodes: [node('n1', '192.168.1.1')],
    apps: [onNetworks('acme', 'web', ['front', 'back'], '10.211.0.1'), onNetworks('acme', 'api', ['front']), onNetworks('acme', 'db', ['back'], '10.211.0.3'), onNetworks('acme', 'cache', ['back'])],
    instances: [twoAddresses, instance('acme', 'api', 0, 1, { address: '10.224.16.3' }), instance('acme', 'db', 0, 1, { address: '10.224.32.3' })],
    networks: [
      { tenant: 'acme', name: 'front', cidr: '10.224.16.0/20', createdIndex: 1, slices: [] },
      { tenant: 'acme', name: 'back', cidr: '10.224.32.0/20', createdIndex: 1, slices: [] },
    ],
  };
  const directory = directoryOf(records);
  assert.equal(directory.networksOfAddress.get('10.224.16.2'), ['acme/front', 'acme/back'], 'a querier on two networks, by either address');
  assert.equal(directory.networksOfAddress.get('10.224.32.2'), ['acme/front', 'acme/back']);
  const ask = (name: string, querier: string, type: number = QUERY_TYPE.A) =>
    answerQuestion(directory, { name, type }, 'acme', { names: appNamesOf(records, directory), querierNetworks: directory.networksOfAddress.get(querier)! });
  // api (front) asks for web (front and back): the VIP.
  assert.equal(addresses(ask('web.acme.hivemind', '10.224.16.3')), ['10.211.0.1']);
  assert.equal(addresses(ask('0.web.acme.hivemind', '10.224.16.3')), ['10.224.16.2'], "web's front address");
  // db (back) asks for web: the VIP too (its chain sends a client on back to web's back address), and web's back address by instance name.
  assert.equal(addresses(ask('web.acme.hivemind', '10.224.32.3')), ['10.211.0.1']);
  assert.equal(addresses(ask('0.web.acme.hivemind', '10.224.32.3')), ['10.224.32.2']);
  // web asks for db: db's VIP (db's first network is back, which web is on).
  assert.equal(addresses(ask('db.acme.hivemind', '10.224.16.2')), ['10.211.0.3']);
  // api asks for db: they share no network.
  const apart = ask('db.acme.hivemind', '10.224.16.3');
  assert.equal([apart.rcode, apart.answers], ['NXDOMAIN', []]);
  assert.is(ask('0.db.acme.hivemind', '10.224.16.3').rcode, 'NXDOMAIN');
  // cache is on back with nothing serving: NODATA for db, NXDOMAIN for api.
  assert.equal([ask('cache.acme.hivemind', '10.224.32.3').rcode, ask('cache.acme.hivemind', '10.224.32.3').answers], ['NOERROR', []]);
  assert.is(ask('cache.acme.hivemind', '10.224.16.3').rcode, 'NXDOMAIN');
  // A querier on no tenant network (the node, a container on the node subnet) sees every app as before.
  assert.equal(addresses(answerQuestion(directory, { name: '0.web.acme.hivemind', type: QUERY_TYPE.A }, 'acme', { names: appNamesOf(records, directory) })), ['10.224.16.2']);
});

test('an app with a VIP answers the VIP once something serves; instance names and SRV keep instance addresses', () => {
  const base = input();
  const withVip = { ...base, apps: base.apps.map((entry) => (entry.name === 'web' || entry.name === 'db' ? { ...entry, vip: entry.name === 'web' ? '10.211.0.1' : '10.211.0.2' } : entry)) };
  const directory = directoryOf(withVip);
  assert.equal(addresses(answerQuestion(directory, { name: 'web.acme.hivemind', type: QUERY_TYPE.A })), ['10.211.0.1']);
  assert.equal(addresses(answerQuestion(directory, { name: 'web.acme.hivemind', type: QUERY_TYPE.AAAA })), []);
  assert.equal(addresses(answerQuestion(directory, { name: 'db.acme.hivemind', type: QUERY_TYPE.A })), [], 'nothing serves: NODATA, as without a VIP');
  assert.equal(addresses(answerQuestion(directory, { name: '1.web.acme.hivemind', type: QUERY_TYPE.A })), ['10.88.0.4']);
  const srv = answerQuestion(directory, { name: '_80._tcp.web.acme.hivemind', type: QUERY_TYPE.SRV });
  assert.equal(srv.additionals.map((record) => ('address' in record ? record.address : '')), ['10.88.0.3', '10.88.0.4']);
  assert.equal(addresses(answerQuestion(directory, { name: 'api.globex.hivemind', type: QUERY_TYPE.A })), ['192.168.1.2'], 'an app without a VIP: its instances');
});

test('names that exist without serving instances are NODATA; names that do not exist are NXDOMAIN', () => {
  const directory = directoryOf(input());
  const cases: [string, number, string, number][] = [
    ['db.acme.hivemind', QUERY_TYPE.A, 'NOERROR', 0],
    ['web.acme.hivemind', QUERY_TYPE.AAAA, 'NOERROR', 0],
    ['web.acme.hivemind', 16, 'NOERROR', 0],
    ['acme.hivemind', QUERY_TYPE.A, 'NOERROR', 0],
    ['hivemind', QUERY_TYPE.SOA, 'NOERROR', 1],
    ['nope.acme.hivemind', QUERY_TYPE.A, 'NXDOMAIN', 0],
    ['web.nope.hivemind', QUERY_TYPE.A, 'NXDOMAIN', 0],
    ['nope.hivemind', QUERY_TYPE.A, 'NXDOMAIN', 0],
    ['2.web.acme.hivemind', QUERY_TYPE.A, 'NXDOMAIN', 0],
    ['a.b.c.web.acme.hivemind', QUERY_TYPE.A, 'NXDOMAIN', 0],
  ];
  for (const [name, type, rcode, answers] of cases) {
    const answer = answerQuestion(directory, { name, type });
    assert.is(answer.rcode, rcode, name);
    assert.is(answer.answers.length, answers, name);
    if (answers === 0) assert.is(answer.authorities[0]?.type, 'SOA', `${name}: a negative answer carries the SOA`);
  }
});

test('slot and instance names, and SRV with ports and the targets addresses', () => {
  const directory = directoryOf(input());
  assert.equal(addresses(answerQuestion(directory, { name: '1.web.acme.hivemind', type: QUERY_TYPE.A })), ['10.88.0.4']);
  assert.equal(addresses(answerQuestion(directory, { name: '0-3.web.acme.hivemind', type: QUERY_TYPE.A })), ['10.88.0.3']);
  assert.is(answerQuestion(directory, { name: '0-1.web.acme.hivemind', type: QUERY_TYPE.A }).rcode, 'NXDOMAIN', 'a retired instance has no name');
  const srv = answerQuestion(directory, { name: '_80._tcp.api.globex.hivemind', type: QUERY_TYPE.SRV });
  assert.equal(srv.answers, [{ name: '_80._tcp.api.globex.hivemind', type: 'SRV', ttl: 1, priority: 0, weight: 10, port: 31000, target: '0-1.api.globex.hivemind' }]);
  assert.equal(srv.additionals, [{ name: '0-1.api.globex.hivemind', type: 'A', ttl: 1, address: '192.168.1.2' }]);
  assert.is(answerQuestion(directory, { name: '_81._tcp.api.globex.hivemind', type: QUERY_TYPE.SRV }).answers.length, 0);
  assert.is(answerQuestion(directory, { name: '_80._udp.api.globex.hivemind', type: QUERY_TYPE.SRV }).answers.length, 0);
  assert.is(answerQuestion(directory, { name: '_x._tcp.api.globex.hivemind', type: QUERY_TYPE.SRV }).rcode, 'NXDOMAIN');
});

test('a querier known as a tenant instance sees its own tenant only; process apps cannot be told apart by address', () => {
  const directory = directoryOf(input());
  assert.is(directory.tenantOfAddress.get('10.88.0.3'), 'acme');
  assert.is(directory.tenantOfAddress.get('192.168.1.2'), undefined, 'a node address belongs to no tenant');
  assert.is(answerQuestion(directory, { name: 'api.globex.hivemind', type: QUERY_TYPE.A }, 'acme').rcode, 'NXDOMAIN');
  assert.is(answerQuestion(directory, { name: 'globex.hivemind', type: QUERY_TYPE.A }, 'acme').rcode, 'NXDOMAIN');
  assert.equal(addresses(answerQuestion(directory, { name: 'web.acme.hivemind', type: QUERY_TYPE.A }, 'acme')), ['10.88.0.3', '10.88.0.4']);
  assert.equal(addresses(answerQuestion(directory, { name: 'api.globex.hivemind', type: QUERY_TYPE.A })), ['192.168.1.2'], 'an unknown querier sees every tenant');
});

test('an address shared by two tenants belongs to neither', () => {
  const shared = input();
  const directory = directoryOf({ ...shared, instances: [...shared.instances, instance('globex', 'api', 1, 2, { address: '10.88.0.3' })] });
  assert.is(directory.tenantOfAddress.get('10.88.0.3'), undefined);
});

test('aliases per network: an alias given on one network answers only queriers on it, at the app\'s address there; one on every network answers everywhere', () => {
  const onNetworks = (name: string, networks: string[], hivemind: HivemindSpec = {}): App =>
    ({ tenant: 'acme', name, version: 1, replicas: 1, versions: [{ version: 1, spec: { hivemind, networks } }], createdIndex: 1, updatedIndex: 1 }) as unknown as App;
  const web = instance('acme', 'web', 0, 1, { address: '10.224.16.2' });
  web.status.endpoint!.addresses = ['10.224.16.2', '10.224.32.2'];
  const records: DiscoveryInput = {
    nodes: [node('n1', '192.168.1.1')],
    apps: [
      // www on front alone, both on front and back (so everywhere), site on front alone, where the app site is not.
      onNetworks('web', ['front', 'back'], { aliases: ['both'], networkAliases: [{ network: 'front', aliases: ['www', 'site'] }] }),
      onNetworks('api', ['front']),
      onNetworks('db', ['back']),
      onNetworks('site', ['back']),
    ],
    instances: [web, instance('acme', 'api', 0, 1, { address: '10.224.16.3' }), instance('acme', 'db', 0, 1, { address: '10.224.32.3' }), instance('acme', 'site', 0, 1, { address: '10.224.32.4' })],
    networks: [
      { tenant: 'acme', name: 'front', cidr: '10.224.16.0/20', createdIndex: 1, slices: [] },
      { tenant: 'acme', name: 'back', cidr: '10.224.32.0/20', createdIndex: 1, slices: [] },
    ],
  };
  const directory = directoryOf(records);
  const names = appNamesOf(records, directory);
  assert.equal(names.aliases.get('acme/www'), [{ app: 'web', networks: ['acme/front'] }]);
  assert.equal(names.aliases.get('acme/both'), [{ app: 'web' }]);
  const ask = (name: string, querier: string) => answerQuestion(directory, { name, type: QUERY_TYPE.A }, 'acme', { names, querierNetworks: directory.networksOfAddress.get(querier)! });
  assert.equal(addresses(ask('www.acme.hivemind', '10.224.16.3')), ['10.224.16.2'], "api on front: web's front address");
  assert.equal(addresses(ask('0.www.acme.hivemind', '10.224.16.3')), ['10.224.16.2'], 'slot names under the alias alike');
  const fromBack = ask('www.acme.hivemind', '10.224.32.3');
  assert.equal([fromBack.rcode, fromBack.answers], ['NXDOMAIN', []], 'db on back: no such name');
  assert.equal(addresses(ask('www.acme.hivemind', '10.224.32.2')), ['10.224.16.2'], 'web itself (on both) by its back address: the alias on front');
  assert.equal(addresses(ask('both.acme.hivemind', '10.224.16.3')), ['10.224.16.2'], 'an alias on every network: front address to api');
  assert.equal(addresses(ask('both.acme.hivemind', '10.224.32.3')), ['10.224.32.2'], "and web's back address to db");
  assert.equal(addresses(ask('site.acme.hivemind', '10.224.16.3')), ['10.224.16.2'], 'on front, where the app site is not, site is web by its alias');
  assert.equal(addresses(ask('site.acme.hivemind', '10.224.32.3')), ['10.224.32.4'], 'on back, the app site');
  assert.equal(addresses(answerQuestion(directory, { name: 'www.acme.hivemind', type: QUERY_TYPE.A }, 'acme', { names })), ['10.224.16.2'], 'a querier on no tenant network sees every name as before');

  // The same over the wire, the server telling queriers apart by their source address.
  const server = new DnsServer({ host: '127.0.0.1', port: 0, upstreams: [], read: () => records, log: () => {} });
  const wire = (name: string, source: string): InstanceType<typeof Packet> => Packet.parse(server.reply(queryBytes(name, QUERY_TYPE.A), source, 'udp') as Buffer);
  assert.equal(wire('www.acme.hivemind', '10.224.16.3').answers.map((record) => record.address), ['10.224.16.2']);
  assert.is(wire('www.acme.hivemind', '10.224.32.3').header.rcode, RCODE.NXDOMAIN, 'the kept reply of a front querier is not shared with a back one');
  assert.equal(wire('www.acme.hivemind', '10.224.16.3').answers.map((record) => record.address), ['10.224.16.2']);
});

/** input() with Compose names: web carries the alias www, db and cache both carry store, and web links db as database. */
function withNames(): DiscoveryInput {
  const base = input();
  return {
    ...base,
    apps: [app('acme', 'web', { aliases: ['www'], links: [{ app: 'db', alias: 'database' }, { app: 'gone', alias: 'old' }] }), app('acme', 'db', { aliases: ['store'] }), app('acme', 'cache', { aliases: ['store', 'web'] }), app('globex', 'api', { aliases: ['www'] })],
    instances: [...base.instances, instance('acme', 'db', 1, 2, { address: '10.88.0.8' }), instance('acme', 'cache', 0, 1, { address: '10.88.0.9' })],
  };
}

test('Compose names: an alias answers like the app name; one several apps carry answers all of them; an app name wins over an alias', () => {
  const records = withNames();
  const directory = directoryOf(records);
  const context = { names: appNamesOf(records, directory) };
  assert.equal(addresses(answerQuestion(directory, { name: 'www.acme.hivemind', type: QUERY_TYPE.A }, undefined, context)), ['10.88.0.3', '10.88.0.4']);
  assert.equal(addresses(answerQuestion(directory, { name: '1.www.acme.hivemind', type: QUERY_TYPE.A }, 'acme', context)), ['10.88.0.4'], 'slot names under an alias');
  assert.equal(addresses(answerQuestion(directory, { name: 'store.acme.hivemind', type: QUERY_TYPE.A }, 'acme', context)).sort(), ['10.88.0.8', '10.88.0.9']);
  assert.equal(addresses(answerQuestion(directory, { name: 'web.acme.hivemind', type: QUERY_TYPE.A }, 'acme', context)), ['10.88.0.3', '10.88.0.4'], "cache's alias web does not shadow the app web");
  assert.equal(answerQuestion(directory, { name: '_80._tcp.www.acme.hivemind', type: QUERY_TYPE.SRV }, undefined, context).answers.map((record) => (record.type === 'SRV' ? record.target : '')), ['0-3.web.acme.hivemind', '1-4.web.acme.hivemind'], "SRV targets are the instances' own names");
  assert.is(answerQuestion(directory, { name: 'www.globex.hivemind', type: QUERY_TYPE.A }, 'acme', context).rcode, 'NXDOMAIN', "another tenant's alias is as hidden as its apps");
  assert.is(answerQuestion(directory, { name: 'database.acme.hivemind', type: QUERY_TYPE.A }, undefined, context).rcode, 'NXDOMAIN', 'a link alias is not a name for everyone');
});

test("Compose links: the linking app's own instances resolve the alias; others do not", () => {
  const records = withNames();
  const directory = directoryOf(records);
  const names = appNamesOf(records, directory);
  assert.is(names.appOfAddress.get('10.88.0.3'), 'web');
  assert.is(names.appOfAddress.get('10.88.0.9'), 'cache');
  assert.is(names.appOfAddress.get('192.168.1.2'), undefined, 'a process app (node address) is no known querier');
  const fromWeb = { names, querierApp: 'web' };
  assert.equal(addresses(answerQuestion(directory, { name: 'database.acme.hivemind', type: QUERY_TYPE.A }, 'acme', fromWeb)), ['10.88.0.8']);
  assert.is(answerQuestion(directory, { name: 'old.acme.hivemind', type: QUERY_TYPE.A }, 'acme', fromWeb).rcode, 'NXDOMAIN', 'a link to an app that does not exist');
  assert.is(answerQuestion(directory, { name: 'database.acme.hivemind', type: QUERY_TYPE.A }, 'acme', { names, querierApp: 'cache' }).rcode, 'NXDOMAIN');

  const server = new DnsServer({ host: '127.0.0.1', port: 0, upstreams: [], read: () => records, log: () => {} });
  const ask = (name: string, source: string): InstanceType<typeof Packet> => Packet.parse(server.reply(queryBytes(name, QUERY_TYPE.A), source, 'udp') as Buffer);
  assert.equal(ask('database.acme.hivemind', '10.88.0.4').answers.map((record) => record.address), ['10.88.0.8'], 'asked from a web instance');
  assert.is(ask('database.acme.hivemind', '10.88.0.9').header.rcode, RCODE.NXDOMAIN, 'asked from the cache instance: the kept reply of web is not shared');
  assert.is(ask('database.acme.hivemind', '127.0.0.1').header.rcode, RCODE.NXDOMAIN, 'asked from the node');
});

test('rotation: successive replies to one question start with successive addresses; other answers are left as they are', () => {
  const base = input();
  const four = [1, 2, 3, 4].map((slot) => instance('acme', 'web', slot, 10 + slot, { address: `10.88.2.${slot}` }));
  const server = new DnsServer({ host: '127.0.0.1', port: 0, upstreams: [], read: () => ({ ...base, instances: four }), log: () => {} });
  const order = (): string[] => Packet.parse(server.reply(queryBytes('web.acme.hivemind', QUERY_TYPE.A, { id: 9 }), '127.0.0.1', 'udp') as Buffer).answers.map((record) => record.address!);
  const seen = [order(), order(), order(), order(), order()];
  assert.equal(seen.map((addresses) => addresses[0]), ['10.88.2.1', '10.88.2.2', '10.88.2.3', '10.88.2.4', '10.88.2.1']);
  for (const addresses of seen) assert.equal([...addresses].sort(), ['10.88.2.1', '10.88.2.2', '10.88.2.3', '10.88.2.4'], 'each reply has every address once');
  assert.equal(seen[2], ['10.88.2.3', '10.88.2.4', '10.88.2.1', '10.88.2.2'], 'a rotation keeps the cyclic order');
  server.invalidate();
  assert.is(order()[0], '10.88.2.2', 'a change of the state does not start the question over');
  const srv = (): string[] => Packet.parse(server.reply(queryBytes('_80._tcp.web.acme.hivemind', QUERY_TYPE.SRV), '127.0.0.1', 'tcp') as Buffer).answers.map((record) => record.target!);
  assert.equal(srv(), srv(), 'SRV answers (whose targets later names point into) are not moved');
  const parsed = parseQuery(queryBytes('web.acme.hivemind', QUERY_TYPE.A));
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  const one = encodeZoneReply(parsed.query, answerQuestion(directoryOf({ ...base, instances: four.slice(0, 1) }), parsed.query));
  assert.not.ok(rotateAddressAnswers(Buffer.from(one), parsed.query.questionEnd, 1), 'one answer: nothing to rotate');
});

test('inZone', () => {
  for (const name of ['hivemind', 'web.acme.hivemind', 'web.acme.hivemind.']) assert.ok(inZone(name), name);
  for (const name of ['', 'example.com', 'nothivemind', 'hivemind.com']) assert.not.ok(inZone(name), name);
});

function queryBytes(name: string, type: number, options: { edns?: boolean; id?: number } = {}): Buffer {
  const packet = new Packet();
  packet.header = new Packet.Header({ id: options.id ?? 4242, rd: 1 });
  packet.questions = [new Packet.Question(name, type, Packet.CLASS.IN)];
  if (options.edns) packet.additionals = [(Packet.Resource.EDNS as unknown as (rdata: object[], opts: object) => InstanceType<typeof Packet.Resource>)([], { udpPayloadSize: 4096 })];
  return packet.toBuffer();
}

test('wire: a query is read with its name lowercased, its EDNS offer, and malformed ones are refused', () => {
  const parsed = parseQuery(queryBytes('Web.ACME.hivemind', QUERY_TYPE.A, { edns: true }));
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  assert.is(parsed.query.name, 'web.acme.hivemind');
  assert.is(parsed.query.type, 1);
  assert.is(parsed.query.id, 4242);
  assert.ok(parsed.query.recursionDesired);
  assert.equal(parsed.query.edns, { payloadBytes: 4096, dnssecOk: false });
  assert.equal(parseQuery(Buffer.alloc(5)), { ok: false, drop: true });
  const cut = queryBytes('web.acme.hivemind', 1).subarray(0, 20);
  const refused = parseQuery(cut);
  assert.ok(!refused.ok && !refused.drop && refused.rcode === RCODE.FORMERR);
  const reply = errorReply(cut, { id: 4242, questionEnd: 12, rcode: RCODE.FORMERR });
  assert.is(Packet.parse(reply).header.rcode, RCODE.FORMERR);
});

test('wire: a zone reply is patched with the query id, RD and letter case; too large for UDP, it is truncated', () => {
  const directory = directoryOf(input());
  const asked = queryBytes('wEb.AcMe.HiveMind', QUERY_TYPE.A, { id: 7 });
  const parsed = parseQuery(asked);
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  const template = encodeZoneReply(parsed.query, answerQuestion(directory, parsed.query));
  const reply = Packet.parse(patchReply(template, asked, parsed.query));
  assert.is(reply.header.id, 7);
  assert.is(reply.header.aa, 1);
  assert.is(reply.header.rd, 1);
  assert.is(reply.questions[0]?.name, 'wEb.AcMe.HiveMind');
  assert.equal(reply.answers.map((record) => record.address), ['10.88.0.3', '10.88.0.4']);
  const truncated = truncateReply(patchReply(template, asked, parsed.query), parsed.query);
  const read = Packet.parse(truncated);
  assert.is(read.header.tc, 1);
  assert.is(read.answers.length, 0);
  assert.is(read.questions[0]?.name, 'wEb.AcMe.HiveMind');
});

test('server (no sockets): many instances overflow 512 bytes over UDP but not TCP; EDNS raises the limit', () => {
  const base = input();
  const many = Array.from({ length: 60 }, (_, slot) => instance('acme', 'web', slot, 100 + slot, { address: `10.88.1.${slot + 1}` }));
  const server = new DnsServer({ host: '127.0.0.1', port: 0, upstreams: [], read: () => ({ ...base, instances: many }), log: () => {} });
  const classic = server.reply(queryBytes('web.acme.hivemind', QUERY_TYPE.A), '127.0.0.1', 'udp') as Buffer;
  assert.ok(classic.length <= UDP_PAYLOAD_BYTES_CLASSIC);
  assert.is(Packet.parse(classic).header.tc, 1);
  const overTcp = server.reply(queryBytes('web.acme.hivemind', QUERY_TYPE.A), '127.0.0.1', 'tcp') as Buffer;
  assert.is(Packet.parse(overTcp).answers.length, 60);
  const withEdns = Packet.parse(server.reply(queryBytes('web.acme.hivemind', QUERY_TYPE.A, { edns: true }), '127.0.0.1', 'udp') as Buffer);
  assert.is(withEdns.header.tc, 0);
  assert.is(withEdns.answers.length, 60);
  assert.ok(withEdns.additionals.some((record) => record.type === Packet.TYPE.EDNS), 'EDNS in, EDNS out');
  assert.is(server.counts.truncated, 1);
});

test('server (no sockets): answers follow invalidate(), and a tenant querier is recognised by its source address', () => {
  let instances = input().instances;
  const server = new DnsServer({ host: '127.0.0.1', port: 0, upstreams: [], read: () => ({ ...input(), instances }), log: () => {} });
  const ask = (name: string, source: string): InstanceType<typeof Packet> => Packet.parse(server.reply(queryBytes(name, QUERY_TYPE.A), source, 'udp') as Buffer);
  assert.equal(ask('web.acme.hivemind', '127.0.0.1').answers.map((record) => record.address), ['10.88.0.3', '10.88.0.4']);
  instances = instances.map((entry) => (entry.id === 'acme.web.0.3' ? { ...entry, status: { ...entry.status, state: 'exited' } } : entry));
  assert.is(ask('web.acme.hivemind', '127.0.0.1').answers.length, 2, 'kept until the state says it changed');
  server.invalidate();
  assert.equal(ask('web.acme.hivemind', '127.0.0.1').answers.map((record) => record.address), ['10.88.0.4']);
  assert.is(ask('api.globex.hivemind', '10.88.0.4').header.rcode, RCODE.NXDOMAIN, 'acme asks for globex');
  assert.is(ask('api.globex.hivemind', '::ffff:10.88.0.4').header.rcode, RCODE.NXDOMAIN);
  assert.is(ask('api.globex.hivemind', '127.0.0.1').answers.length, 1);
});

test('reply cache: kept for the smallest TTL, served with the remaining TTL, negative replies for the SOA minimum', () => {
  const packet = new Packet();
  packet.header = new Packet.Header({ id: 1, qr: 1, rd: 1, ra: 1 });
  packet.questions = [new Packet.Question('example.com', 1, 1)];
  packet.answers = [new Packet.Resource({ name: 'example.com', type: 1, class: 1, ttl: 30, address: '93.184.216.34' }), new Packet.Resource({ name: 'example.com', type: 1, class: 1, ttl: 60, address: '93.184.216.35' })];
  const cache = new ReplyCache(2);
  assert.ok(cache.put('k', packet.toBuffer(), 1000));
  const later = Packet.parse(cache.get('k', 11_000)!);
  assert.equal(later.answers.map((record) => record.ttl), [20, 20]);
  assert.is(cache.get('k', 31_000), undefined, 'expired');
  const negative = new Packet();
  negative.header = new Packet.Header({ id: 1, qr: 1, rcode: RCODE.NXDOMAIN });
  negative.questions = [new Packet.Question('nope.example.com', 1, 1)];
  negative.authorities = [new Packet.Resource({ name: 'example.com', type: 6, class: 1, ttl: 900, primary: 'ns.example.com', admin: 'h.example.com', serial: 1, refresh: 1, retry: 1, expiration: 1, minimum: 5 })];
  const negativeBytes = negative.toBuffer();
  assert.is(replyLayout(negativeBytes)?.soaMinimumSeconds, 5);
  assert.ok(cache.put('n', negativeBytes, 0));
  assert.ok(cache.get('n', 4000) !== undefined);
  assert.is(cache.get('n', 5000), undefined);
  const failure = new Packet();
  failure.header = new Packet.Header({ id: 1, qr: 1, rcode: RCODE.SERVFAIL });
  assert.not.ok(cache.put('f', failure.toBuffer(), 0), 'SERVFAIL is not kept');
});

test('withoutOpt drops a trailing OPT record', () => {
  const parsed = parseQuery(queryBytes('web.acme.hivemind', 1, { edns: true }));
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  const reply = encodeZoneReply(parsed.query, answerQuestion(directoryOf(input()), parsed.query));
  const stripped = Packet.parse(withoutOpt(reply));
  assert.is(stripped.additionals.length, 0);
  assert.is(stripped.answers.length, 2);
});

test.run();
