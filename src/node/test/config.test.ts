// resolveConfig: flags over environment over defaults, and every invalid
// setting named by the flag or variable it came from.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDurationMs, resolveConfig, type AgentSystem } from '../config.js';

const system: AgentSystem = { hostname: 'box-1.example.com', externalIpv4: ['10.0.0.7', '10.0.1.7'], cwd: '/srv' };

function ok(flags: Parameters<typeof resolveConfig>[0], env: Record<string, string> = {}, machine = system) {
  const resolved = resolveConfig(flags, env, machine);
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  return resolved.config;
}

function problems(flags: Parameters<typeof resolveConfig>[0], env: Record<string, string> = {}) {
  const resolved = resolveConfig(flags, env, system);
  if (resolved.ok) throw new Error('expected problems');
  return resolved.problems;
}

test('defaults', () => {
  const config = ok({});
  assert.is(config.name, 'box-1.example.com');
  assert.is(config.dataDir, '/srv/.hivemind');
  assert.is(config.bind, '0.0.0.0');
  assert.is(config.advertise, '10.0.0.7', 'the first external IPv4');
  assert.equal(config.ports, { api: 7070, peer: 7071, gossip: 7072, dns: 7053, proxy: 7080 });
  assert.is(config.token, undefined);
  assert.is(config.voterGraceMs, 30_000);
  assert.is(config.tickMs, 50);
});

test('metrics need a token unless --metrics-public is on', () => {
  assert.is(ok({}).metricsPublic, false);
  assert.is(ok({ metricsPublic: 'on' }).metricsPublic, true);
  assert.is(ok({}, { HIVEMIND_METRICS_PUBLIC: 'yes' }).metricsPublic, true);
  const bad = problems({ metricsPublic: 'maybe' });
  assert.is(bad[0]?.flag, '--metrics-public');
  assert.match(bad[0]?.message ?? '', 'on or off');
});

test('--tenant-networks: read as before (for a rolling upgrade), with a warning that it is no longer needed naming where it came from; the detach grace a duration', () => {
  const warningsOf = (flags: Parameters<typeof resolveConfig>[0], env: Record<string, string> = {}): string[] => {
    const resolved = resolveConfig(flags, env, system);
    assert.ok(resolved.ok, JSON.stringify(resolved));
    return resolved.warnings;
  };
  assert.equal(warningsOf({}), []);
  assert.is(ok({}).tenantNetworks, 'none', 'the old default');
  assert.is(ok({ tenantNetworks: 'on' }).tenantNetworks, 'all');
  assert.equal(ok({}, { HIVEMIND_TENANT_NETWORKS: 'acme, beta' }).tenantNetworks, ['acme', 'beta']);
  for (const value of ['on', 'off', 'acme,beta']) {
    const [warning, ...more] = warningsOf({ tenantNetworks: value });
    assert.match(warning ?? '', /^--tenant-networks is no longer needed: once every node runs this release/);
    assert.is(more.length, 0);
  }
  assert.match(warningsOf({}, { HIVEMIND_TENANT_NETWORKS: 'acme, beta' })[0] ?? '', /^HIVEMIND_TENANT_NETWORKS is no longer needed/);
  const bad = problems({ tenantNetworks: 'acme,Not_A_Tenant' });
  assert.is(bad[0]?.flag, '--tenant-networks');
  assert.match(bad[0]?.message ?? '', 'tenant names separated by commas');
  assert.is(ok({}).networkDetachGraceMs, 60_000);
  assert.is(ok({}, { HIVEMIND_NETWORK_DETACH_GRACE: '2s' }).networkDetachGraceMs, 2_000);
  assert.is(problems({ networkDetachGrace: '10ms' })[0]?.flag, '--network-detach-grace');
});

test('advertise falls back to loopback, and follows a specific bind address', () => {
  assert.is(ok({}, {}, { ...system, externalIpv4: [] }).advertise, '127.0.0.1');
  assert.is(ok({ bind: '192.168.1.5' }).advertise, '192.168.1.5');
  assert.is(ok({ bind: '0.0.0.0', advertise: 'node1.lan' }).advertise, 'node1.lan');
});

test('a host name that is not a valid node name is shortened', () => {
  assert.is(ok({}, {}, { ...system, hostname: 'my box!' }).name, 'node');
  assert.is(ok({}, {}, { ...system, hostname: 'a'.repeat(70) + '.lan' }).name, 'node');
  assert.is(ok({}, {}, { ...system, hostname: 'web-1.' + 'x'.repeat(70) }).name, 'web-1');
});

test('flags win over environment variables, which win over defaults', () => {
  const env = { HIVEMIND_API_PORT: '8000', HIVEMIND_PEER_PORT: '8001', HIVEMIND_NAME: 'from-env', HIVEMIND_DATA_DIR: 'data', HIVEMIND_TOKEN: 'hm1.from-environment-token' };
  const config = ok({ apiPort: '9000', name: 'from-flag' }, env);
  assert.is(config.ports.api, 9000);
  assert.is(config.ports.peer, 8001);
  assert.is(config.name, 'from-flag');
  assert.is(config.dataDir, '/srv/data');
  assert.is(config.token, 'hm1.from-environment-token');
  assert.is(ok({ dataDir: '/var/lib/hivemind' }).dataDir, '/var/lib/hivemind');
  assert.is(ok({ apiPort: 0, peerPort: '0' }).ports.api, 0, 'port 0 picks a free port');
  assert.is(ok({}, { HIVEMIND_API_PORT: '' }).ports.api, 7070, 'an empty variable is unset');
});

test('durations and tuning knobs', () => {
  assert.is(ok({ voterGrace: '2s' }).voterGraceMs, 2000);
  assert.is(ok({ voterGrace: '1.5m' }).voterGraceMs, 90_000);
  assert.is(ok({ voterGrace: 5000 }).voterGraceMs, 5000, 'a number is milliseconds');
  assert.is(ok({}, { HIVEMIND_VOTER_GRACE: '45s' }).voterGraceMs, 45_000);
  assert.is(ok({ tickMs: '20', snapshotEvery: '500' }).snapshotEveryEntries, 500);
  assert.is(parseDurationMs('250ms'), 250);
  assert.is(parseDurationMs('30'), undefined);
  assert.is(parseDurationMs('-1s'), undefined);
});

test('each invalid setting is reported, naming its flag or variable', () => {
  const found = problems({ apiPort: 'http', voterGrace: '30', token: 'short', bind: 'everywhere' }, { HIVEMIND_PEER_PORT: '70000', HIVEMIND_NAME: 'has space' });
  const byFlag = Object.fromEntries(found.map((problem) => [problem.flag, problem.message]));
  assert.equal(Object.keys(byFlag).sort(), ['--api-port', '--bind', '--name', '--peer-port', '--token', '--voter-grace']);
  assert.match(byFlag['--api-port']!, /^--api-port must be a port number .* got "http"$/);
  assert.match(byFlag['--peer-port']!, /^HIVEMIND_PEER_PORT must be a port number/);
  assert.match(byFlag['--name']!, /^HIVEMIND_NAME must be a node name/);
  assert.match(byFlag['--voter-grace']!, /^--voter-grace must be a duration such as 30s/);
  assert.match(byFlag['--token']!, /^--token must be a join token/);
  assert.match(byFlag['--bind']!, /^--bind must be an IP address/);
  assert.is(found.find((problem) => problem.flag === '--peer-port')!.env, 'HIVEMIND_PEER_PORT');
});

test('--warm-networks: 16 by default, 0 turns the pool off, out of range is refused by name', () => {
  assert.is(ok({}).warmNetworks, 16);
  assert.is(ok({ warmNetworks: '0' }).warmNetworks, 0);
  assert.is(ok({}, { HIVEMIND_WARM_NETWORKS: '32' }).warmNetworks, 32);
  for (const bad of ['-1', '257', 'many']) {
    const found = problems({ warmNetworks: bad });
    assert.is(found.length, 1);
    assert.match(found[0]!.message, /^--warm-networks must be the number of network namespaces kept ready/);
  }
  assert.match(problems({}, { HIVEMIND_WARM_NETWORKS: '1.5' })[0]!.message, /^HIVEMIND_WARM_NETWORKS must be/);
});

test('--otlp-endpoint: off by default; an http(s) URL without credentials; --log-level: info by default', () => {
  assert.is(ok({}).otlpEndpoint, undefined);
  assert.is(ok({ otlpEndpoint: 'http://127.0.0.1:4318' }).otlpEndpoint, 'http://127.0.0.1:4318');
  assert.is(ok({}, { HIVEMIND_OTLP_ENDPOINT: 'https://collector:4318/v1/traces' }).otlpEndpoint, 'https://collector:4318/v1/traces');
  assert.match(problems({ otlpEndpoint: 'collector:4318' })[0]!.message, /^--otlp-endpoint must be an http:\/\/ or https:\/\/ URL/);
  assert.match(problems({ otlpEndpoint: 'not a url' })[0]!.message, /^--otlp-endpoint must be the URL of an OTLP\/HTTP collector/);
  assert.match(problems({}, { HIVEMIND_OTLP_ENDPOINT: 'http://user:secret@collector' })[0]!.message, /^HIVEMIND_OTLP_ENDPOINT must not carry a user name or password/);
  assert.is(ok({}).logLevel, 'info');
  assert.is(ok({ logLevel: 'debug' }).logLevel, 'debug');
  assert.is(ok({}, { HIVEMIND_LOG_LEVEL: 'warn' }).logLevel, 'warn');
  assert.match(problems({ logLevel: 'verbose' })[0]!.message, '--log-level must be one of debug, info, warn, error, got "verbose"');
});

test('out-of-range tuning and clashing ports are refused', () => {
  assert.match(problems({ voterGrace: '100ms' })[0]!.message, 'from 1s to 24h');
  assert.match(problems({ tickMs: '1' })[0]!.message, '--tick-ms must be the length of a Raft tick');
  assert.match(problems({ apiPort: '7071' })[0]!.message, '--peer-port must differ from --api-port (both are 7071)');
  assert.match(problems({ advertise: 'host:7071' })[0]!.message, '--advertise must be a host name or IP address');
});

test('--label: KEY=VALUE labels, from the flag or HIVEMIND_LABELS; bad ones named, Hivemind\'s own refused', () => {
  assert.equal(ok({}).labels, {});
  assert.equal(ok({ labels: 'zone=a,disk=ssd' }).labels, { zone: 'a', disk: 'ssd' });
  assert.equal(ok({}, { HIVEMIND_LABELS: 'rack=r1, gpu=' }).labels, { rack: 'r1', gpu: '' });
  assert.match(problems({ labels: 'zone' })[0]!.message, /^--label must be KEY=VALUE labels/);
  assert.match(problems({ labels: 'hivemind.state-version=9' })[0]!.message, "must not set Hivemind's own labels");
  assert.match(problems({}, { HIVEMIND_LABELS: 'a b=c' })[0]!.message, /^HIVEMIND_LABELS must be KEY=VALUE/);
});

test.run();
