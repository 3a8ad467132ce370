// The name-resolution files of a container (pure): /etc/hosts maps
// localhost and the container's own name; /etc/resolv.conf names the node's
// DNS server on the gateway with the tenant's search domains when the overlay
// is ready, else keeps the node's reachable resolvers and drops loopback ones.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLUSTER_DNS_NDOTS, containerNameFiles, isLoopbackResolver } from '../name-files.js';

test('hosts: localhost, and the hostname on the container address', () => {
  const files = containerNameFiles({ hostname: 'default.web.0.1', address: '10.88.0.7', nodeResolvConfs: [] });
  const lines = files.hosts.split('\n');
  assert.ok(lines.includes('127.0.0.1\tlocalhost'));
  assert.ok(lines.includes('::1\tlocalhost ip6-localhost ip6-loopback'));
  assert.ok(lines.includes('10.88.0.7\tdefault.web.0.1'));
});

test('hosts: before the network gave an address, the hostname maps to 127.0.1.1', () => {
  assert.ok(containerNameFiles({ hostname: 'a', nodeResolvConfs: [] }).hosts.split('\n').includes('127.0.1.1\ta'));
});

test('resolv.conf: loopback resolvers are left out; search and options are kept', () => {
  const node = 'nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.10\n# comment\nsearch example.test\noptions edns0 trust-ad\nnameserver 2001:db8::1\n';
  const text = containerNameFiles({ hostname: 'a', nodeResolvConfs: [node] }).resolvConf;
  assert.not.match(text, /127\.0\.0\.53/);
  assert.not.match(text, /nameserver ::1/);
  assert.match(text, /^nameserver 192\.0\.2\.10$/m);
  assert.match(text, /^nameserver 2001:db8::1$/m);
  assert.match(text, /^search example\.test$/m);
  assert.match(text, /^options edns0 trust-ad$/m);
});

test('resolv.conf: a node file with only a loopback stub gives way to the next (systemd-resolved upstreams)', () => {
  const text = containerNameFiles({ hostname: 'a', nodeResolvConfs: ['nameserver 127.0.0.53\nsearch lan\n', 'nameserver 198.51.100.1\nnameserver 198.51.100.2\n'] }).resolvConf;
  assert.match(text, /^nameserver 198\.51\.100\.1$/m);
  assert.match(text, /^nameserver 198\.51\.100\.2$/m);
  assert.not.match(text, /127\.0\.0\.53/);
  assert.not.match(text, /search lan/, 'the options of the file whose servers are used');
});

test('resolv.conf: at most three nameservers; none usable gives none, and says so', () => {
  const many = 'nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n';
  assert.is(containerNameFiles({ hostname: 'a', nodeResolvConfs: [many] }).resolvConf.match(/^nameserver /gm)?.length, 3);
  const none = containerNameFiles({ hostname: 'a', nodeResolvConfs: ['nameserver 127.0.0.1\n'] }).resolvConf;
  assert.not.match(none, /nameserver/m);
  assert.match(none, /no resolver a container can reach/);
});

test('resolv.conf on the cluster DNS: the gateway alone, the tenant then the cluster as search domains, ndots', () => {
  const node = 'nameserver 192.0.2.10\nsearch example.test\noptions edns0\n';
  const text = containerNameFiles({ hostname: 'a', nodeResolvConfs: [node], clusterDns: { nameserver: '10.210.3.1', tenant: 'acme' } }).resolvConf;
  assert.equal(text.split('\n').filter((line) => line !== '' && !line.startsWith('#')), ['nameserver 10.210.3.1', 'search acme.hivemind hivemind', `options ndots:${CLUSTER_DNS_NDOTS}`]);
  assert.is(CLUSTER_DNS_NDOTS, 2, 'the bare <app> and <slot>.<app> go through the search domains; <app>.<tenant>.hivemind is asked as written');
});

test('isLoopbackResolver', () => {
  for (const address of ['127.0.0.1', '127.0.0.53', '127.1.2.3', '::1']) assert.ok(isLoopbackResolver(address), address);
  for (const address of ['10.0.0.1', '192.0.2.1', '2001:db8::1', '::']) assert.not.ok(isLoopbackResolver(address), address);
});

test.run();
