import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAppFile } from '../parse.js';
import { deployNetworks, networkFieldOf } from '../networks.js';
import { dedent, errorsOf, warningsOf } from './helpers.js';

const shop = dedent(`
  services:
    web:
      image: app
      networks: [front, back]
    db:
      image: postgres
      networks:
        back: { aliases: [database] }
    admin:
      image: app
      networks: [shared]
    worker:
      image: app
  networks:
    front:
      driver: bridge
    back:
      ipam:
        config:
          - subnet: 10.224.160.0/20
            gateway: 10.224.160.1
    shared:
      external: true
      name: ops-net
`);

test('a service joins the declared networks in the order written; none given is the default network', () => {
  const result = parseAppFile(shop, 'app.yaml', { defaultTenant: 'acme' });
  assert.ok(result.ok);
  const byName = Object.fromEntries(result.apps.map((app) => [app.name, app]));
  assert.equal(byName.web?.networks, ['front', 'back']);
  assert.equal(byName.db?.networks, ['back']);
  assert.equal(byName.db?.hivemind.aliases, ['database']);
  assert.equal(byName.admin?.networks, ['ops-net'], 'an external network by its name:');
  assert.is(byName.worker?.networks, undefined, 'the default network');
  assert.equal(result.networks, [
    { tenant: 'acme', name: 'front', origin: 'networks.front' },
    { tenant: 'acme', name: 'back', subnet: { cidr: '10.224.160.0/20', path: 'networks.back.ipam.config[0].subnet' }, origin: 'networks.back' },
    { tenant: 'acme', name: 'default', origin: 'services.worker' },
  ], 'the networks to create: declared, joined, not external; default for worker (a tenant made before the pool lacks it)');
  assert.equal(result.origins.web?.['networks[1]'], 'services.web.networks[1]');
  assert.equal(result.origins.db?.['networks[0]'], 'services.db.networks.back');
  assert.equal(result.warnings, [
    "app.yaml: networks.front.driver: is ignored: Hivemind's networks are its own: a block of the tenant pool, routed over the cluster's overlay",
    "app.yaml: networks.back.ipam.config[0].gateway: is ignored: each node's slice has its own gateway, its first address",
  ]);
});

test('a network not declared, one listed twice, a bad subnet or name are errors naming the field', () => {
  assert.equal(errorsOf(`services:\n  web:\n    image: app\n    networks: [front, back]\nnetworks:\n  front: {}\n`), [
    'app.yaml: services.web.networks[1]: network "back" is not declared; declare it under the top-level networks: (or leave it out to use the default network)',
  ]);
  assert.equal(errorsOf(`services:\n  web:\n    image: app\n    networks:\n      back: { aliases: [b] }\n`), [
    'app.yaml: services.web.networks.back: network "back" is not declared; declare it under the top-level networks: (or leave it out to use the default network)',
  ]);
  assert.equal(errorsOf(`services:\n  web:\n    image: app\n    networks: [default, default]\n`), ['app.yaml: services.web.networks[1]: network "default" is listed twice']);
  assert.match(errorsOf(`services:\n  web: { image: app, networks: [b] }\nnetworks:\n  b: { ipam: { config: [{ subnet: 10.224.1.0/33 }] } }\n`)[0] ?? '', /^app\.yaml: networks\.b\.ipam\.config\[0\]\.subnet: "10\.224\.1\.0\/33" is not an IPv4 subnet/);
  assert.match(errorsOf(`services:\n  web: { image: app, networks: [b] }\nnetworks:\n  b: { name: Bad_Net }\n`)[0] ?? '', /^app\.yaml: networks\.b\.name: network name "Bad_Net" must be a DNS label/);
  assert.match(errorsOf(`services:\n  web: { image: app }\nnetworks:\n  b: { drivr: x }\n`)[0] ?? '', /networks\.b\.drivr: is an unknown key; did you mean "driver"\?/);
});

test('naming the default network alone deploys as naming none; the file may give default a subnet', () => {
  const result = parseAppFile(`services:\n  web: { image: app, networks: [default] }\nnetworks:\n  default: { ipam: { config: [{ subnet: 10.224.32.0/20 }] } }\n`, 'app.yaml');
  assert.ok(result.ok);
  assert.is(result.apps[0]?.networks, undefined);
  assert.equal(result.networks, [{ tenant: 'default', name: 'default', subnet: { cidr: '10.224.32.0/20', path: 'networks.default.ipam.config[0].subnet' }, origin: 'networks.default' }]);
  assert.equal(warningsOf(`services:\n  web: { image: app, networks: [default] }\n`), []);
  const plain = parseAppFile(`services:\n  web: { image: app }\n`, 'app.yaml');
  assert.ok(plain.ok);
  assert.equal(plain.networks, [], 'a file without networks makes none');
});

test('deployNetworks: subnets of the pool become blocks, others a warning; a cluster without tenant networks drops them all', () => {
  const result = parseAppFile(shop, 'app.yaml', { defaultTenant: 'acme' });
  assert.ok(result.ok);
  const on = deployNetworks(result.apps, result.networks, { pool: '10.224.0.0/12', clusterVersion: 6 });
  assert.equal(on.networks, [{ tenant: 'acme', name: 'front' }, { tenant: 'acme', name: 'back', cidr: '10.224.160.0/20' }, { tenant: 'acme', name: 'default' }]);
  assert.equal(on.warnings, []);
  assert.equal(on.apps, result.apps);
  const elsewhere = deployNetworks(result.apps, result.networks, { pool: '10.240.0.0/12', clusterVersion: 6 });
  assert.equal(elsewhere.networks?.[1], { tenant: 'acme', name: 'back' });
  assert.match(elsewhere.warnings[0] ?? '', /^networks\.back\.ipam\.config\[0\]\.subnet: is ignored: a network's block is a \/20 of the tenant pool 10\.240\.0\.0\/12/);
  for (const cluster of [{ clusterVersion: 6 }, { pool: '10.224.0.0/12', clusterVersion: 5 }]) {
    const off = deployNetworks(result.apps, result.networks, cluster);
    assert.is(off.networks, undefined);
    assert.ok(off.apps.every((app) => app.networks === undefined), 'the apps on their tenant network as before');
    assert.match(off.warnings[0] ?? '', /^networks: is ignored: /);
  }
  assert.equal(deployNetworks([], [], { clusterVersion: 2 }).warnings, [], 'a file without networks: no warning');
  assert.is(networkFieldOf('networks[1].cidr', result.networks), 'networks.back.ipam.config[0].subnet');
  assert.is(networkFieldOf('networks[0].name', result.networks), 'networks.front');
  assert.is(networkFieldOf('specs[0].name', result.networks), undefined);
});

test('aliases per network: those on every network of a service stay aliases; the others are kept per network, their path known; an older cluster answers them everywhere', () => {
  const file = dedent(`
    services:
      web:
        image: app
        networks:
          front: { aliases: [www, both] }
          back: { aliases: [both, web] }
      db:
        image: postgres
        networks:
          back: { aliases: [database] }
    networks:
      front: {}
      back: {}
  `);
  const result = parseAppFile(file, 'app.yaml', { defaultTenant: 'acme' });
  assert.ok(result.ok);
  const byName = Object.fromEntries(result.apps.map((app) => [app.name, app]));
  assert.equal(byName.web?.hivemind.aliases, ['both'], 'given on front and back: everywhere');
  assert.equal(byName.web?.hivemind.networkAliases, [{ network: 'front', aliases: ['www'] }]);
  assert.equal(byName.db?.hivemind.aliases, ['database'], 'a service on one network: as before');
  assert.is(byName.db?.hivemind.networkAliases, undefined);
  assert.is(result.origins.web?.['hivemind.networkAliases[0].network'], 'services.web.networks.front.aliases');
  const current = deployNetworks(result.apps, result.networks, { pool: '10.224.0.0/12', clusterVersion: 7 }, result.origins);
  assert.equal(current.apps, result.apps);
  assert.equal(current.warnings, []);
  const six = deployNetworks(result.apps, result.networks, { pool: '10.224.0.0/12', clusterVersion: 6 }, result.origins);
  const sixWeb = six.apps.find((app) => app.name === 'web')!;
  assert.equal([sixWeb.hivemind.aliases, sixWeb.hivemind.networkAliases], [['both', 'www'], undefined]);
  assert.equal(six.warnings, ['services.web.networks.front.aliases: answers on every network of the service: a node of the cluster runs a Hivemind older than state version 7, which keeps no aliases per network']);
  assert.equal(six.networks?.length, 2, 'the networks are kept');
  const off = deployNetworks(result.apps, result.networks, { clusterVersion: 7 });
  assert.equal(off.apps.find((app) => app.name === 'web')!.hivemind, { aliases: ['both', 'www'] }, 'no networks: the app is on one, and its aliases on it');
});

test('deployNetworks: the default network of a tenant that lacks it is made by the deploy, once, for apps on it', () => {
  const plain = parseAppFile(`services:\n  web: { image: app }\n  api: { image: app }\n`, 'app.yaml', { defaultTenant: 'default' });
  assert.ok(plain.ok);
  const cluster = { pool: '10.224.0.0/12', clusterVersion: 6 };
  assert.equal(deployNetworks(plain.apps, plain.networks, { ...cluster, hasNetwork: () => false }).networks, [{ tenant: 'default', name: 'default' }], 'the implicit tenant, adopted by its first deploy: one default for both apps');
  assert.is(deployNetworks(plain.apps, plain.networks, { ...cluster, hasNetwork: () => true }).networks, undefined, 'a tenant holding it: nothing made');
  assert.is(deployNetworks(plain.apps, plain.networks, cluster).networks, undefined, 'nothing known of the tenant: nothing made');
  assert.is(deployNetworks(plain.apps, plain.networks, { clusterVersion: 6, hasNetwork: () => false }).networks, undefined, 'no pool: nothing made');
  const shopFile = parseAppFile(shop, 'app.yaml', { defaultTenant: 'acme' });
  assert.ok(shopFile.ok);
  const joined = deployNetworks(shopFile.apps, shopFile.networks, { ...cluster, hasNetwork: () => false });
  assert.is(joined.networks?.filter((network) => network.name === 'default').length, 1, 'listed by the file already: not twice');
});

test.run();
