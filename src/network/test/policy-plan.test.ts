import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetworkPolicy } from '../../state/types.js';
import { decide, instanceAddressesOf, instanceAddressOf, parseSaved, planPolicyChains, policyModel, restoreChangesInput, restoreInput, shortHash, type PolicyInstance } from '../policy-plan.js';

const CLUSTER = '10.210.0.0/16';

function instance(id: string, node: string, address?: string, updatedIndex = 1): PolicyInstance {
  const [tenant, app] = id.split('.') as [string, string];
  return { id, tenant, app, node, ...(address !== undefined ? { address } : {}), updatedIndex };
}

function policy(tenant: string, name: string, apps: string[], ingress: NetworkPolicy['ingress']): NetworkPolicy {
  return { tenant, name, apps, ingress, createdIndex: 1, updatedIndex: 1 };
}

const instances = [
  instance('acme.web.0.1', 'n1', '10.210.0.2'),
  instance('acme.api.0.1', 'n2', '10.210.1.2'),
  instance('acme.db.0.1', 'n1', '10.210.0.3'),
  instance('evil.probe.0.1', 'n2', '10.210.1.3'),
  instance('evil.probe.1.1', 'n3'),
  instance('acme.worker.0.1', 'n1', '192.0.2.10'),
];
const webFromApi = policy('acme', 'web-from-api', ['web'], [{ fromApps: ['api'], ports: [80] }, { fromTenants: ['evil'], ports: [8080] }, { fromCidrs: ['192.0.2.0/24'] }]);

function model(policies: NetworkPolicy[] = [webFromApi], apps = [{ tenant: 'acme', name: 'db', policies: [] as string[] }]) {
  return policyModel({ clusterCidr: CLUSTER, instances, policies, apps });
}

test('instanceAddressOf: the endpoint address when the status has one', () => {
  assert.is(instanceAddressOf({ state: 'running', endpoint: { address: '10.210.0.2', ports: [] } }), '10.210.0.2');
  assert.is(instanceAddressOf({ state: 'running' }), undefined);
  assert.is(instanceAddressOf({ endpoint: { address: 'fe80::1' } }), undefined);
  assert.is(instanceAddressOf(undefined), undefined);
});

test('the default: one tenant reaches itself; other tenants and unknown cluster addresses are denied; outside is allowed', () => {
  const built = model([]);
  assert.equal(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'allow');
  const other = decide(built, { tenant: 'evil', app: 'probe' }, { tenant: 'acme', app: 'web' }, 80);
  assert.is(other.verdict, 'deny');
  assert.match(other.reason, /default: tenant "evil" may not reach tenant "acme"/);
  assert.is(decide(built, { tenant: 'acme', app: 'web' }, { tenant: 'evil', app: 'probe' }, 80).verdict, 'deny', 'both ways');
  const byAddress = decide(built, { address: '10.210.1.3' }, { tenant: 'acme', app: 'web' }, 80);
  assert.equal([byAddress.verdict, byAddress.source.instance], ['deny', 'evil.probe.0.1']);
  assert.is(decide(built, { address: '10.210.9.9' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'deny');
  assert.is(decide(built, { address: '198.51.100.1' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'allow');
});

test('with the tenant network pool: its addresses are instances as the cluster network\'s are; the tenant chain drops the rest of the pool too', () => {
  const onNetworks = [instance('acme.web.0.1', 'n1', '10.224.0.2'), instance('acme.api.0.1', 'n2', '10.224.0.66'), instance('evil.probe.0.1', 'n2', '10.224.16.2'), instance('old.app.0.1', 'n2', '10.210.1.2')];
  const built = policyModel({ clusterCidr: CLUSTER, tenantCidr: '10.224.0.0/12', instances: onNetworks, policies: [], apps: [] });
  assert.is(decide(built, { address: '10.224.0.66' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'allow', 'its own tenant across slices');
  assert.is(decide(built, { address: '10.224.16.2' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'deny', "another tenant's network");
  assert.is(decide(built, { address: '10.210.1.2' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'deny', 'a tenant still on the cluster network');
  const unknown = decide(built, { address: '10.225.0.9' }, { tenant: 'acme', app: 'web' }, 80);
  assert.equal([unknown.verdict, /tenant network pool but no instance holds it/.test(unknown.reason)], ['deny', true]);
  const chains = planPolicyChains(built, 'n1');
  assert.equal(chains.chains.get(`HM-T-${shortHash('acme')}`), [
    '-s 10.224.0.2/32 -j RETURN',
    '-s 10.224.0.66/32 -j RETURN',
    '-s 10.210.0.0/16 -m comment --comment "hivemind: tenant acme: other tenants denied" -j DROP',
    '-s 10.224.0.0/12 -m comment --comment "hivemind: tenant acme: other tenant networks denied" -j DROP',
  ]);
  assert.ok(chains.chains.get('HIVEMIND-POLICY')!.some((rule) => rule.startsWith('-d 10.224.0.2/32 ')), 'a destination on a tenant network is protected');
  const without = planPolicyChains(policyModel({ clusterCidr: CLUSTER, instances: onNetworks, policies: [], apps: [] }), 'n1');
  assert.is(without.destinationCount, 0, 'without the pool, its addresses are nobody\'s (as before)');
});

test('several networks of a tenant: apps reach each other over a network they share, at the address they hold on it; policies still allow', () => {
  const networks = [
    { tenant: 'acme', name: 'front', cidr: '10.224.16.0/20' },
    { tenant: 'acme', name: 'back', cidr: '10.224.32.0/20' },
    { tenant: 'evil', name: 'default', cidr: '10.224.48.0/20' },
  ];
  const onNetworks = [
    // web is on front and back: one entry per address.
    instance('acme.web.0.1', 'n1', '10.224.16.2'),
    instance('acme.web.0.1', 'n1', '10.224.32.2'),
    instance('acme.api.0.1', 'n2', '10.224.16.66'),
    instance('acme.db.0.1', 'n1', '10.224.32.3'),
    instance('evil.probe.0.1', 'n2', '10.224.48.66'),
  ];
  const built = policyModel({ clusterCidr: CLUSTER, tenantCidr: '10.224.0.0/12', networks, instances: onNetworks, policies: [], apps: [] });
  assert.is(built.networkOf('10.224.32.2'), 'acme/back');
  assert.is(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'allow', 'front');
  assert.is(decide(built, { tenant: 'acme', app: 'db' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'allow', 'back');
  assert.is(decide(built, { tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'db' }, 80).verdict, 'allow', 'web reaches db over back');
  const apart = decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'db' }, 5432);
  assert.equal([apart.verdict, apart.reason], ['deny', 'default: acme/api (on acme/front) and acme/db (on acme/back) share no network']);
  assert.is(decide(built, { address: '10.224.16.2' }, { tenant: 'acme', app: 'db' }, 5432).verdict, 'deny', "web's front address does not reach db");
  assert.is(decide(built, { address: '10.224.32.2' }, { tenant: 'acme', app: 'db' }, 5432).verdict, 'allow', "web's back address does");
  assert.is(decide(built, { tenant: 'evil', app: 'probe' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'deny');
  const chains = planPolicyChains(built, 'n1');
  const main = chains.chains.get('HIVEMIND-POLICY')!;
  assert.ok(main.includes(`-d 10.224.16.2/32 -m comment --comment "hivemind: acme/web" -g HM-W-${shortHash('acme/front')}`), main.join('\n'));
  assert.ok(main.includes(`-d 10.224.32.2/32 -m comment --comment "hivemind: acme/web" -g HM-W-${shortHash('acme/back')}`), main.join('\n'));
  assert.equal(chains.chains.get(`HM-W-${shortHash('acme/back')}`), [
    '-s 10.224.32.0/20 -m comment --comment "hivemind: network acme/back" -j RETURN',
    '-s 10.210.0.0/16 -m comment --comment "hivemind: network acme/back: other tenants denied" -j DROP',
    '-s 10.224.0.0/12 -m comment --comment "hivemind: network acme/back: other networks denied" -j DROP',
  ]);
  assert.is(chains.destinationCount, 3, "web's two addresses and db's");
  // A policy letting api into db: allowed although they share no network.
  const allowed = policyModel({ clusterCidr: CLUSTER, tenantCidr: '10.224.0.0/12', networks, instances: onNetworks, policies: [policy('acme', 'db-from-api', ['db'], [{ fromApps: ['api'] }])], apps: [] });
  assert.is(decide(allowed, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'db' }, 5432).verdict, 'allow');
  assert.ok(planPolicyChains(allowed, 'n1').chains.get(`HM-P-${shortHash('acme/db-from-api')}`)!.some((rule) => rule.startsWith('-s 10.224.16.66/32 ')));
  assert.equal(instanceAddressesOf({ endpoint: { address: '10.224.16.2', ports: [], addresses: ['10.224.16.2', '10.224.32.2'] } }), ['10.224.16.2', '10.224.32.2']);
  assert.equal(instanceAddressesOf({ endpoint: { address: '10.224.16.2', ports: [] } }), ['10.224.16.2']);
  assert.equal(instanceAddressesOf({}), []);
});

test('the transition to tenant networks: a tenant\'s containers still on the node subnets and those on its default reach each other both ways, other tenants on either kind stay out, a policy lets either kind in', () => {
  const networks = [
    { tenant: 'acme', name: 'default', cidr: '10.224.0.0/20' },
    { tenant: 'evil', name: 'default', cidr: '10.224.16.0/20' },
  ];
  const mixed = [
    // web started before acme had its default (node subnet); api after (its default).
    instance('acme.web.0.1', 'n1', '10.210.0.2'),
    instance('acme.api.0.1', 'n1', '10.224.0.2'),
    instance('evil.old.0.1', 'n2', '10.210.1.2'),
    instance('evil.probe.0.1', 'n2', '10.224.16.66'),
  ];
  const built = policyModel({ clusterCidr: CLUSTER, tenantCidr: '10.224.0.0/12', networks, instances: mixed, policies: [], apps: [] });
  assert.is(decide(built, { address: '10.224.0.2' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'allow', 'tenant network -> node subnet');
  assert.is(decide(built, { address: '10.210.0.2' }, { tenant: 'acme', app: 'api' }, 80).verdict, 'allow', 'node subnet -> tenant network');
  for (const source of ['10.210.1.2', '10.224.16.66']) {
    assert.is(decide(built, { address: source }, { tenant: 'acme', app: 'web' }, 80).verdict, 'deny', `evil ${source} -> acme web (node subnet)`);
    assert.is(decide(built, { address: source }, { tenant: 'acme', app: 'api' }, 80).verdict, 'deny', `evil ${source} -> acme api (tenant network)`);
  }
  const chains = planPolicyChains(built, 'n1');
  const main = chains.chains.get('HIVEMIND-POLICY')!;
  assert.ok(main.includes(`-d 10.210.0.2/32 -m comment --comment "hivemind: acme/web" -g HM-T-${shortHash('acme')}`), main.join('\n'));
  assert.ok(main.includes(`-d 10.224.0.2/32 -m comment --comment "hivemind: acme/api" -g HM-W-${shortHash('acme/default')}`), main.join('\n'));
  assert.equal(chains.chains.get(`HM-T-${shortHash('acme')}`)!.slice(0, 2), ['-s 10.210.0.2/32 -j RETURN', '-s 10.224.0.2/32 -j RETURN'], 'the node subnet destination lets in the tenant\'s instances of either kind');
  assert.equal(chains.chains.get(`HM-W-${shortHash('acme/default')}`)!.slice(0, 2), ['-s 10.224.0.0/20 -m comment --comment "hivemind: network acme/default" -j RETURN', '-s 10.210.0.2/32 -j RETURN'], 'the tenant network destination lets in its block and the tenant\'s node subnet instances');
  const allowed = policyModel({ clusterCidr: CLUSTER, tenantCidr: '10.224.0.0/12', networks, instances: mixed, policies: [policy('acme', 'from-evil', ['web', 'api'], [{ fromTenants: ['evil'], ports: [8080] }])], apps: [] });
  for (const source of ['10.210.1.2', '10.224.16.66']) {
    for (const app of ['web', 'api']) assert.is(decide(allowed, { address: source }, { tenant: 'acme', app }, 8080).verdict, 'allow', `evil ${source} -> acme ${app}, the policy`);
  }
  const policyRules = planPolicyChains(allowed, 'n1').chains.get(`HM-P-${shortHash('acme/from-evil')}`)!;
  for (const source of ['10.210.1.2', '10.224.16.66']) assert.ok(policyRules.some((rule) => rule.startsWith(`-s ${source}/32 `)), policyRules.join('\n'));
});

test('a selected app accepts only what a rule allows, on its ports; the rule that decided is named', () => {
  const built = model();
  const api = decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 80);
  assert.equal([api.verdict, api.policy, api.rule], ['allow', 'acme/web-from-api', 1]);
  assert.is(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 81).verdict, 'deny', 'another port');
  const same = decide(built, { tenant: 'acme', app: 'db' }, { tenant: 'acme', app: 'web' }, 80);
  assert.is(same.verdict, 'deny', 'its own tenant too, once selected');
  assert.match(same.reason, /no rule of policy acme\/web-from-api allows it/);
  const evil = decide(built, { address: '10.210.1.3' }, { tenant: 'acme', app: 'web' }, 8080);
  assert.equal([evil.verdict, evil.rule], ['allow', 2]);
  assert.equal([decide(built, { address: '192.0.2.77' }, { tenant: 'acme', app: 'web' }, 22).rule], [3], 'a CIDR rule, every port');
  assert.is(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'db' }, 80).verdict, 'allow', 'db is not selected');
});

test('selection: a policy with no apps selects all; an app spec may name a policy', () => {
  const all = policy('acme', 'all', [], [{ fromApps: ['api'] }]);
  assert.is(decide(model([all]), { tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'db' }, 5432).verdict, 'deny');
  const named = policy('acme', 'named', ['nothing'], [{ fromApps: ['api'] }]);
  const built = model([named], [{ tenant: 'acme', name: 'db', policies: ['named'] }]);
  assert.equal(decide(built, { tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'db' }, 1).selecting, ['acme/named']);
  assert.is(decide(built, { tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'db' }, 1).verdict, 'deny');
  assert.is(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'db' }, 1).verdict, 'allow');
  assert.is(decide(built, { tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'api' }, 1).verdict, 'allow', 'api is not selected');
});

test('two instances claiming one address: the later report wins; addresses outside the cluster network are left out', () => {
  const built = policyModel({ clusterCidr: CLUSTER, instances: [instance('acme.old.0.1', 'n1', '10.210.0.9', 5), instance('evil.new.0.1', 'n1', '10.210.0.9', 7)], policies: [], apps: [] });
  assert.is(built.byAddress.get('10.210.0.9')?.id, 'evil.new.0.1');
  assert.is(model().byAddress.has('192.0.2.10'), false);
});

test('chains of n1: its own destinations only, a tenant chain for unselected apps, an app and policy chain for selected ones', () => {
  const chains = planPolicyChains(model(), 'n1');
  const tenant = `HM-T-${shortHash('acme')}`;
  const app = `HM-A-${shortHash('acme/web')}`;
  const policyChain = `HM-P-${shortHash('acme/web-from-api')}`;
  assert.equal([...chains.chains.keys()].sort(), ['HIVEMIND-POLICY', app, policyChain, 'HM-ALLOW', tenant].sort());
  assert.equal(chains.chains.get('HIVEMIND-POLICY'), [
    '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
    `-d 10.210.0.2/32 -m comment --comment "hivemind: acme/web" -g ${app}`,
    `-d 10.210.0.3/32 -m comment --comment "hivemind: acme/db" -g ${tenant}`,
  ]);
  assert.equal(chains.chains.get(tenant), ['-s 10.210.0.2/32 -j RETURN', '-s 10.210.0.3/32 -j RETURN', '-s 10.210.1.2/32 -j RETURN', '-s 10.210.0.0/16 -m comment --comment "hivemind: tenant acme: other tenants denied" -j DROP']);
  assert.equal(chains.chains.get(app), ['-j MARK --set-xmark 0x0/0x200000', `-j ${policyChain}`, '-m mark --mark 0x200000/0x200000 -g HM-ALLOW', '-m comment --comment "hivemind: acme/web: no policy allows it" -j DROP']);
  const mark = '-j MARK --set-xmark 0x200000/0x200000';
  assert.equal(chains.chains.get(policyChain), [
    `-s 10.210.1.2/32 -p tcp -m multiport --dports 80 -m comment --comment "hivemind: acme/web-from-api rule 1" ${mark}`,
    `-s 10.210.1.2/32 -p udp -m multiport --dports 80 -m comment --comment "hivemind: acme/web-from-api rule 1" ${mark}`,
    `-s 10.210.1.3/32 -p tcp -m multiport --dports 8080 -m comment --comment "hivemind: acme/web-from-api rule 2" ${mark}`,
    `-s 10.210.1.3/32 -p udp -m multiport --dports 8080 -m comment --comment "hivemind: acme/web-from-api rule 2" ${mark}`,
    `-s 192.0.2.0/24 -m comment --comment "hivemind: acme/web-from-api rule 3" ${mark}`,
  ]);
  assert.is(chains.destinationCount, 2);
  assert.is(chains.ruleCount, 3 + 4 + 4 + 5 + 1);
});

test('chains stay linear: a policy chain is shared by every app it selects, a tenant chain by every unselected app', () => {
  const many: PolicyInstance[] = [];
  for (let index = 0; index < 200; index++) many.push(instance(`acme.app${index % 20}.${index}.1`, index % 2 === 0 ? 'n1' : 'n2', `10.210.${index % 2}.${10 + Math.floor(index / 2)}`));
  for (let index = 0; index < 100; index++) many.push(instance(`other.app.${index}.1`, 'n2', `10.210.2.${10 + index}`));
  const shared = policy('acme', 'from-other', ['app0', 'app2', 'app4', 'app6'], [{ fromTenants: ['other'], ports: [80, 443] }]);
  const chains = planPolicyChains(policyModel({ clusterCidr: CLUSTER, instances: many, policies: [shared], apps: [] }), 'n1');
  // 1 + 100 destinations; tenant acme: 200 + 1; 4 app chains of 4; 1 policy chain of 100 x 2 protocols; HM-ALLOW.
  assert.is(chains.ruleCount, 101 + 201 + 16 + 200 + 1);
  assert.is(chains.destinationCount, 100);
});

test('more than 15 ports are split across multiport rules', () => {
  const ports = Array.from({ length: 20 }, (_, index) => 1000 + index);
  const chains = planPolicyChains(model([policy('acme', 'wide', ['web'], [{ fromApps: ['api'], ports }])]), 'n1');
  const rules = chains.chains.get(`HM-P-${shortHash('acme/wide')}`)!;
  assert.is(rules.length, 4);
  assert.ok(rules[0]!.includes('--dports 1000,1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,1012,1013,1014 '));
  assert.ok(rules[1]!.includes('--dports 1015,1016,1017,1018,1019 '));
});

test('restore input: desired chains declared and filled, stale Hivemind chains flushed and deleted, the jump only when missing', () => {
  const chains = planPolicyChains(model([]), 'n1');
  const text = restoreInput(chains, ['HIVEMIND-POLICY', 'HM-A-000000000000', 'DOCKER'], false);
  const lines = text.split('\n');
  assert.is(lines[0], '*filter');
  assert.ok(lines.includes(':HM-A-000000000000 - [0:0]'));
  assert.ok(lines.includes('-X HM-A-000000000000'));
  assert.not.ok(text.includes('DOCKER'), 'other chains are not touched');
  assert.ok(lines.includes('-I FORWARD 1 -m comment --comment "hivemind: network policies" -j HIVEMIND-POLICY'));
  assert.not.ok(restoreInput(chains, [], true).includes('-I FORWARD'));
  assert.is(lines.at(-2), 'COMMIT');
});

test('changes input: only new and changed chains written, stale ones deleted in the same transaction, nothing when equal', () => {
  const before = planPolicyChains(model([]), 'n1');
  const after = planPolicyChains(model([webFromApi]), 'n1');
  assert.is(restoreChangesInput(after, after.chains), undefined, 'nothing differs');
  const text = restoreChangesInput(after, before.chains)!;
  const lines = text.split('\n');
  const tenant = `HM-T-${shortHash('acme')}`;
  const app = `HM-A-${shortHash('acme/web')}`;
  const policyChain = `HM-P-${shortHash('acme/web-from-api')}`;
  assert.is(lines[0], '*filter');
  assert.ok(lines.includes(`:${app} - [0:0]`) && lines.includes(`:${policyChain} - [0:0]`), 'new chains declared');
  assert.ok(lines.includes(':HIVEMIND-POLICY - [0:0]'), 'the main chain changed: web now goes to its app chain');
  assert.ok(before.chains.get(tenant)!.length > 0 && after.chains.has(tenant), 'db still uses the tenant chain');
  assert.not.ok(lines.some((line) => line.startsWith(`:${tenant} `) || line.startsWith(`-A ${tenant} `)), 'an unchanged chain is not touched');
  assert.not.ok(text.includes('FORWARD'), 'the jump is left alone');
  assert.is(lines.at(-2), 'COMMIT');
  const back = restoreChangesInput(before, after.chains)!.split('\n');
  assert.ok(back.includes(`-X ${app}`) && back.includes(`-X ${policyChain}`), 'chains no longer desired are deleted');
  assert.ok(back.includes(':HIVEMIND-POLICY - [0:0]'), 'with the chain that named them rewritten');
  assert.ok(back.indexOf(`-X ${app}`) > Math.max(...back.flatMap((line, index) => (line.startsWith('-A ') ? [index] : []))), 'deleted after every rule is written');
});

test('parseSaved: Hivemind chains and rules, the jump from FORWARD, nothing else', () => {
  const saved = parseSaved(['*filter', ':FORWARD ACCEPT [0:0]', ':DOCKER - [0:0]', ':HIVEMIND-POLICY - [0:0]', ':HM-ALLOW - [0:0]', '-A FORWARD -m comment --comment "hivemind: network policies" -j HIVEMIND-POLICY', '-A DOCKER -j RETURN', '-A HM-ALLOW -j MARK --set-xmark 0x0/0x200000', 'COMMIT'].join('\n'));
  assert.equal(saved, { chains: ['HIVEMIND-POLICY', 'HM-ALLOW'], text: '-A HM-ALLOW -j MARK --set-xmark 0x0/0x200000', jumpPresent: true });
  assert.is(parseSaved(':FORWARD ACCEPT [0:0]\n').jumpPresent, false);
});

test('egress: a policy with egress lets its apps reach only what its rules allow; ingress alone stays as it was', () => {
  // acme's api may reach web on 80 and anything outside; nothing else. The policy has no ingress rule: api's ingress is untouched.
  const apiOut = { ...policy('acme', 'api-out', ['api'], []), egress: [{ toApps: ['web'], ports: [80] }, { toCidrs: ['0.0.0.0/0'], ports: [443] }] };
  const built = model([apiOut]);
  const allowed = decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 80);
  assert.equal([allowed.verdict, allowed.egress], ['allow', 'egress: policy acme/api-out egress rule 1']);
  assert.match(allowed.reason, /default: apps of tenant "acme" reach each other/, 'then the destination\'s ingress decides');
  const db = decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'db' }, 5432);
  assert.is(db.verdict, 'deny');
  assert.match(db.reason, /^egress: no egress rule of policy acme\/api-out lets acme\/api reach acme\/db on 5432/);
  assert.is(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 81).verdict, 'deny', 'another port');
  assert.is(decide(built, { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'db' }, 443).verdict, 'allow', 'a CIDR rule matches the destination\'s instance addresses');
  assert.is(decide(built, { address: '10.210.1.2' }, { tenant: 'acme', app: 'db' }, 5432).verdict, 'deny', 'by address too');
  assert.is(decide(built, { tenant: 'acme', app: 'web' }, { tenant: 'acme', app: 'api' }, 80).verdict, 'allow', 'api\'s ingress untouched: an egress-only policy');
  assert.is(decide(built, { tenant: 'acme', app: 'db' }, { tenant: 'acme', app: 'web' }, 5432).verdict, 'allow', 'other apps\' egress untouched');
  // Egress allows, the destination's ingress still must: evil is another tenant.
  const toEvil = { ...apiOut, egress: [{ toTenants: ['evil'] }] };
  const crossed = decide(model([toEvil]), { tenant: 'acme', app: 'api' }, { tenant: 'evil', app: 'probe' }, 80);
  assert.equal([crossed.verdict, crossed.egress], ['deny', 'egress: policy acme/api-out egress rule 1']);
  assert.match(crossed.reason, /default: tenant "acme" may not reach tenant "evil"/);
  // An empty egress list: nowhere.
  assert.is(decide(model([{ ...apiOut, egress: [] }]), { tenant: 'acme', app: 'api' }, { tenant: 'acme', app: 'web' }, 80).verdict, 'deny');
  // With an ingress rule too, the policy restricts both.
  const both = { ...apiOut, ingress: [{ fromApps: ['web'] }] };
  assert.is(decide(model([both]), { tenant: 'acme', app: 'db' }, { tenant: 'acme', app: 'api' }, 80).verdict, 'deny');
});

test('egress chains: the source node jumps from each local instance of the app to its egress chain, before the destinations', () => {
  const apiOut = { ...policy('acme', 'api-out', ['api'], []), egress: [{ toApps: ['web'], ports: [80] }, { toCidrs: ['0.0.0.0/0'] }] };
  const built = model([apiOut]);
  const egressName = `HM-E-${shortHash('acme/api')}`;
  const policyName = `HM-Q-${shortHash('acme/api-out')}`;
  const onN2 = planPolicyChains(built, 'n2');
  assert.equal(onN2.chains.get('HIVEMIND-POLICY')!.slice(0, 2), ['-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN', `-s 10.210.1.2/32 -m comment --comment "hivemind: acme/api egress" -j ${egressName}`]);
  assert.ok(onN2.chains.get('HIVEMIND-POLICY')!.slice(2).every((rule) => rule.startsWith('-d ')), 'then the destinations');
  assert.equal(onN2.chains.get(egressName), [
    '-j MARK --set-xmark 0x0/0x200000',
    `-j ${policyName}`,
    '-m mark --mark 0x200000/0x200000 -g HM-ALLOW',
    '-m comment --comment "hivemind: acme/api: no egress rule allows it" -j DROP',
  ]);
  assert.equal(onN2.chains.get(policyName), [
    '-d 10.210.0.2/32 -p tcp -m multiport --dports 80 -m comment --comment "hivemind: acme/api-out egress rule 1" -j MARK --set-xmark 0x200000/0x200000',
    '-d 10.210.0.2/32 -p udp -m multiport --dports 80 -m comment --comment "hivemind: acme/api-out egress rule 1" -j MARK --set-xmark 0x200000/0x200000',
    '-d 0.0.0.0/0 -m comment --comment "hivemind: acme/api-out egress rule 2" -j MARK --set-xmark 0x200000/0x200000',
  ]);
  assert.ok(![...onN2.chains.keys()].includes(`HM-A-${shortHash('acme/api')}`), 'api\'s ingress stays with its tenant chain');
  const onN1 = planPolicyChains(built, 'n1');
  assert.ok(![...onN1.chains.keys()].some((name) => name.startsWith('HM-E-') || name.startsWith('HM-Q-')), 'no api instance on n1: no egress chain');
});

test.run();
