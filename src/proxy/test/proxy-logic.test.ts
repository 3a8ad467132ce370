// The proxy's pure parts: route table, traffic split, balancers, breaker,
// outlier ejection, retry budget and the retry helper with a fake clock.
// No sockets, no timers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { App, AppSpec, Instance, NodeRecord } from '../../state/types.js';
import { abVersionOf, matchesAbRule } from '../ab-rule.js';
import { newBalanceState, pickBackend, type Candidate } from '../balancer.js';
import { cookieValue } from '../cookies.js';
import { CircuitBreaker } from '../breaker.js';
import { OutlierDetector } from '../outlier.js';
import { forwardedHeadOf, requestHost, upstreamRequestHeaders } from '../headers.js';
import { backoffMs, retryDelayMs, RetryBudget, RETRY_RESERVE, withRetries } from '../retry.js';
import { normalizeHost, routeTableOf, underPrefix, type BackendTarget } from '../route-table.js';
import { HTTP2_PREFACE, protocolOf } from '../server.js';
import { settingsOf } from '../settings.js';
import { trafficSplitOf } from '../traffic-split.js';

/** A seeded generator (mulberry32): the same seed, the same numbers. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = Math.imul(state ^ (state >>> 15), 1 | state);
    value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value;
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

function spec(name: string, hivemind: AppSpec['hivemind'] = {}): AppSpec {
  return { name, tenant: 'acme', readOnly: false, replicas: 2, environment: {}, ports: [{ target: 80, protocol: 'tcp' }], volumes: [], limits: {}, reservations: {}, update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 0 }, restart: { condition: 'any', delayMs: 0, windowMs: 0 }, constraints: [], labels: {}, command: ['x'], hivemind };
}

function app(name: string, hivemind: AppSpec['hivemind'] = {}, extra: Partial<App> = {}): App {
  return { tenant: 'acme', name, version: 1, replicas: 2, versions: [{ version: 1, spec: spec(name, hivemind), deployedIndex: 1, deployedAt: 0 }], createdIndex: 1, updatedIndex: 1, ...extra };
}

function instance(appName: string, slot: number, port: number, options: { version?: number; state?: Instance['status']['state']; desired?: Instance['desired'] } = {}): Instance {
  return {
    id: `acme.${appName}.${slot}.${port}`,
    tenant: 'acme',
    app: appName,
    slot,
    version: options.version ?? 1,
    node: 'n1',
    desired: options.desired ?? 'running',
    status: { state: options.state ?? 'running', reportedAt: 0, updatedIndex: 1, endpoint: { address: '10.0.0.5', ports: [{ target: 80, port, protocol: 'tcp' }] } },
  } as Instance;
}

const NODE = { id: 'n1', status: 'up', addresses: { api: '10.0.0.1:7070', peer: '10.0.0.1:7071', gossip: '10.0.0.1:7072' } } as NodeRecord;

function backend(instanceId: string, version = 1): BackendTarget {
  return { instance: instanceId, version, address: '10.0.0.5', port: 1, authority: '10.0.0.5:1' };
}

function candidates(...targets: BackendTarget[]): Candidate[] {
  return targets.map((target) => ({ target, inFlight: 0 }));
}

test('route table: app names and declared routes, longest prefix first, serving instances only, conflicts reported', () => {
  const table = routeTableOf({
    apps: [app('web', { routes: [{ host: 'shop.example.com' }] }), app('api', { routes: [{ host: 'shop.example.com', path: '/api' }, { host: 'shop.example.com' }] })],
    instances: [instance('web', 0, 4000), instance('web', 1, 4001, { state: 'starting' }), instance('web', 2, 4002, { desired: 'stopped' }), instance('api', 0, 5000)],
    nodes: [NODE],
  });
  assert.is(table.lookup('WEB.acme.hivemind:7080', '/')?.target.key, 'acme/web');
  assert.equal(table.lookup('web.acme.hivemind', '/')?.target.backends.map((entry) => entry.authority), ['10.0.0.5:4000']);
  assert.is(table.lookup('shop.example.com', '/api/items')?.route, 'shop.example.com/api');
  assert.is(table.lookup('shop.example.com', '/api?x=1')?.target.key, 'acme/api');
  assert.is(table.lookup('shop.example.com', '/apix')?.target.key, 'acme/api', 'apps claim routes in key order: api before web');
  assert.is(table.lookup('other.example.com', '/'), undefined);
  assert.equal(table.conflicts, [{ route: 'shop.example.com', holder: 'acme/api', loser: 'acme/web' }]);
});

test('HTTP/2 requests: the preface decides the protocol; pseudo-headers dropped, :authority as Host, cookies joined', () => {
  assert.is(protocolOf(HTTP2_PREFACE), 'http2');
  assert.is(protocolOf(Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4])])), 'http2');
  assert.is(protocolOf(HTTP2_PREFACE.subarray(0, 10)), undefined, 'a partial preface: wait for more');
  assert.is(protocolOf(Buffer.from('PRIVATE / HTTP/1.1\r\n')), 'http1');
  assert.is(protocolOf(Buffer.from('G')), 'http1');
  const h2 = upstreamRequestHeaders([':method', 'GET', ':path', '/x', ':authority', 'web.acme.hivemind', ':scheme', 'http', 'cookie', 'a=1', 'accept', '*/*', 'cookie', 'b=2', 'te', 'trailers'], { clientAddress: '10.0.0.9', protocol: 'http' });
  assert.equal(h2, ['accept', '*/*', 'host', 'web.acme.hivemind', 'cookie', 'a=1; b=2', 'x-forwarded-for', '10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'web.acme.hivemind']);
  const h1 = upstreamRequestHeaders(['Host', 'web.acme.hivemind', 'Connection', 'keep-alive'], { clientAddress: '10.0.0.9', protocol: 'http' });
  assert.equal(h1, ['Host', 'web.acme.hivemind', 'x-forwarded-for', '10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'web.acme.hivemind']);
  assert.is(requestHost({ ':authority': 'web.acme.hivemind' }), 'web.acme.hivemind');
  assert.is(requestHost({ host: 'a', ':authority': 'b' }), 'a');
});

test('a request head in one pass: host, body, hop-by-hop and Connection-named headers dropped, X-Forwarded-* set', () => {
  const client = { clientAddress: '10.0.0.9', protocol: 'http' };
  const plain = forwardedHeadOf(['Host', 'web.acme.hivemind', 'Accept', '*/*'], client);
  assert.equal(plain, { headers: ['Host', 'web.acme.hivemind', 'Accept', '*/*', 'x-forwarded-for', '10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'web.acme.hivemind'], host: 'web.acme.hivemind', hasBody: false });
  const named = forwardedHeadOf(['Host', 'h', 'Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'Keep-Alive', 'timeout=5', 'Content-Length', '4', 'X-Forwarded-For', '1.2.3.4', 'X-Forwarded-Host', 'spoofed'], client);
  assert.equal(named.headers, ['Host', 'h', 'Content-Length', '4', 'x-forwarded-for', '1.2.3.4, 10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'h']);
  assert.ok(named.hasBody);
  assert.not.ok(forwardedHeadOf(['Host', 'h', 'Content-Length', '0'], client).hasBody, 'a length of 0 is no body');
  assert.ok(forwardedHeadOf(['Host', 'h', 'Transfer-Encoding', 'chunked'], client).hasBody);
  assert.is(forwardedHeadOf(['Accept', '*/*'], client).host, undefined);
  assert.is(forwardedHeadOf([':authority', 'web.acme.hivemind', ':path', '/'], client).host, 'web.acme.hivemind', 'HTTP/2: the authority is the host');
  const upgrade = forwardedHeadOf(['Host', 'h', 'Connection', 'Upgrade', 'Upgrade', 'websocket'], client, true);
  assert.equal(upgrade.headers.slice(0, 6), ['Host', 'h', 'Connection', 'upgrade', 'Upgrade', 'websocket'], 'a WebSocket handshake keeps its upgrade');
});

test('route table helpers: host normalization and prefix boundaries', () => {
  assert.is(normalizeHost('Web.Acme.Hivemind.:80'), 'web.acme.hivemind');
  assert.is(normalizeHost('[::1]:80'), '[::1]');
  assert.ok(underPrefix('/api', '/api'));
  assert.ok(underPrefix('/api/x', '/api'));
  assert.ok(!underPrefix('/apix', '/api'));
  assert.ok(underPrefix('/anything', ''));
});

test('traffic split: canary weights, blue-green holds the old version, rollback the restored one, missing versions give way', () => {
  const base = { id: 5, kind: 'update' as const, fromVersion: 1, toVersion: 2, state: 'running' as const, message: '', startedAt: 0, updatedAt: 0, batch: [] as number[], done: 0, total: 1 };
  const canary = app('web', {}, { version: 2, rollout: { ...base, strategy: 'canary', weights: [{ version: 1, percent: 80 }, { version: 2, percent: 20 }] } });
  assert.equal(trafficSplitOf(canary, new Set([1, 2])), [{ version: 1, percent: 80 }, { version: 2, percent: 20 }]);
  assert.equal(trafficSplitOf(canary, new Set([1])), undefined, 'only version 1 serves: all of it alike');
  const blueGreen = app('web', {}, { version: 2, rollout: { ...base, strategy: 'blue-green', state: 'awaiting-promotion' } });
  assert.equal(trafficSplitOf(blueGreen, new Set([1, 2])), [{ version: 1, percent: 100 }]);
  assert.equal(trafficSplitOf({ ...blueGreen, rollout: { ...blueGreen.rollout!, state: 'succeeded' } }, new Set([1, 2])), undefined);
  const rollback = app('web', {}, { version: 1, rollout: { ...base, kind: 'rollback', strategy: 'rolling', fromVersion: 2, toVersion: 1 } });
  assert.equal(trafficSplitOf(rollback, new Set([1, 2])), [{ version: 1, percent: 100 }]);
  assert.equal(trafficSplitOf(app('web', {}, { rollout: { ...base, strategy: 'rolling' } }), new Set([1, 2])), undefined);
});

test('A/B rule: header or cookie, a value or any; the route table names the version while two versions serve', () => {
  const rule = settingsOf(spec('web', { proxy: { abHeader: 'x-beta' } })).ab!;
  assert.ok(matchesAbRule({ 'x-beta': 'yes' }, rule));
  assert.ok(!matchesAbRule({ 'x-beta': '' }, rule), 'an empty value does not match');
  assert.ok(!matchesAbRule({ 'x-other': 'yes' }, rule));
  const cookie = settingsOf(spec('web', { proxy: { abCookie: 'group', abValue: 'b' } })).ab!;
  assert.ok(matchesAbRule({ cookie: 'session=1; group=b' }, cookie));
  assert.ok(!matchesAbRule({ cookie: 'group=a' }, cookie));
  assert.ok(!matchesAbRule({}, cookie));
  assert.is(settingsOf(spec('web', { proxy: { retries: 1 } })).ab, undefined);
  const base = { id: 5, kind: 'update' as const, strategy: 'blue-green' as const, fromVersion: 1, toVersion: 2, state: 'awaiting-promotion' as const, message: '', startedAt: 0, updatedAt: 0, batch: [] as number[], done: 0, total: 2 };
  const versions = [
    { version: 1, spec: spec('web'), deployedIndex: 1, deployedAt: 0 },
    { version: 2, spec: spec('web', { strategy: 'blue-green', proxy: { abHeader: 'x-beta' } }), deployedIndex: 2, deployedAt: 0 },
  ];
  const input = (serving: number[]): Parameters<typeof routeTableOf>[0] => ({
    apps: [app('web', {}, { version: 2, versions, rollout: base })],
    instances: serving.map((version, slot) => instance('web', slot, 4000 + slot, { version })),
    nodes: [NODE],
  });
  const both = routeTableOf(input([1, 2])).apps.get('acme/web')!;
  assert.is(both.abVersion, 2);
  assert.equal(both.split, [{ version: 1, percent: 100 }], 'the others still follow the split: blue until promoted');
  assert.is(routeTableOf(input([2, 2])).apps.get('acme/web')!.abVersion, undefined, 'one version serves: nothing to choose');
  assert.is(abVersionOf(undefined, 2, new Set([1, 2])), undefined);
});

test('round-robin takes turns; a split of 80/20 is exact over every 5 picks', () => {
  const state = newBalanceState();
  const list = candidates(backend('a'), backend('b'), backend('c'));
  const picks = Array.from({ length: 6 }, () => list[pickBackend(list, state, { balance: 'round-robin', split: undefined, random: seeded(1) })]!.target.instance);
  assert.equal(picks, ['a', 'b', 'c', 'a', 'b', 'c']);
  const split = [{ version: 1, percent: 80 }, { version: 2, percent: 20 }];
  const mixed = candidates(backend('a'), backend('b'), backend('c', 2));
  const versions = Array.from({ length: 2000 }, () => mixed[pickBackend(mixed, state, { balance: 'round-robin', split, random: seeded(1) })]!.target.version);
  assert.is(versions.filter((version) => version === 2).length, 400);
  for (let start = 0; start < 2000; start += 5) assert.is(versions.slice(start, start + 5).filter((version) => version === 2).length, 1);
});

test('least-request: of two random choices, the one with fewer in flight', () => {
  const list: Candidate[] = [{ target: backend('a'), inFlight: 5 }, { target: backend('b'), inFlight: 0 }, { target: backend('c'), inFlight: 9 }];
  const random = seeded(7);
  const counts = new Map<string, number>();
  for (let index = 0; index < 300; index++) {
    const picked = list[pickBackend(list, newBalanceState(), { balance: 'least-request', split: undefined, random })]!.target.instance;
    counts.set(picked, (counts.get(picked) ?? 0) + 1);
  }
  assert.is(counts.get('c'), undefined, 'the busiest never wins a pair');
  assert.ok((counts.get('b') ?? 0) > (counts.get('a') ?? 0));
});

test('weighted spreads a version share over its instances', () => {
  const state = newBalanceState();
  const list = candidates(backend('a'), backend('b'), backend('c', 2));
  const split = [{ version: 1, percent: 50 }, { version: 2, percent: 50 }];
  const picks = Array.from({ length: 400 }, () => list[pickBackend(list, state, { balance: 'weighted', split, random: seeded(1) })]!.target.instance);
  assert.equal([picks.filter((id) => id === 'a').length, picks.filter((id) => id === 'b').length, picks.filter((id) => id === 'c').length], [100, 100, 200]);
});

test('hash: a key keeps its backend; only the keys of a backend that leaves move', () => {
  const full = candidates(backend('a'), backend('b'), backend('c'), backend('d'));
  const pick = (list: Candidate[], key: string): string => list[pickBackend(list, newBalanceState(), { balance: 'hash', split: undefined, hashKey: key, random: seeded(1) })]!.target.instance;
  const keys = Array.from({ length: 400 }, (_, index) => `user-${index}`);
  const before = new Map(keys.map((key) => [key, pick(full, key)]));
  assert.ok(new Set(before.values()).size === 4, 'every backend gets keys');
  const without = full.filter((candidate) => candidate.target.instance !== 'b');
  for (const key of keys) {
    const after = pick(without, key);
    if (before.get(key) !== 'b') assert.is(after, before.get(key), `key ${key} stayed`);
  }
  assert.is(cookieValue('a=1; session=xyz; b=2', 'session'), 'xyz');
  assert.is(cookieValue(undefined, 'session'), undefined);
});

test('breaker: opens after consecutive failures, one half-open probe, closes on its success, reopens on its failure', () => {
  const breaker = new CircuitBreaker({ failuresMax: 3, openMs: 1000 });
  assert.ok(breaker.allow(0));
  assert.not.ok(breaker.recordFailure(0));
  breaker.recordSuccess();
  breaker.recordFailure(1);
  breaker.recordFailure(2);
  assert.ok(breaker.recordFailure(3), 'the third in a row opens it');
  assert.is(breaker.state(500), 'open');
  assert.not.ok(breaker.allow(500));
  assert.is(breaker.state(1003), 'half-open');
  assert.ok(breaker.allow(1003), 'one probe');
  assert.not.ok(breaker.allow(1004), 'only one at a time');
  assert.ok(breaker.recordFailure(1010), 'a failed probe opens it again');
  assert.not.ok(breaker.allow(1500));
  assert.ok(breaker.allow(2010));
  breaker.recordSuccess();
  assert.is(breaker.state(2011), 'closed');
  assert.ok(breaker.allow(2011));
});

test('outlier ejection: consecutive 5xx eject for growing spells; a 2xx resets the count; the caller may forbid it', () => {
  const outlier = new OutlierDetector({ failuresMax: 2, ejectionMs: 100 });
  assert.not.ok(outlier.recordStatus(500, 0, true));
  assert.not.ok(outlier.recordStatus(200, 1, true));
  assert.not.ok(outlier.recordStatus(503, 2, true));
  assert.ok(outlier.recordStatus(503, 3, true));
  assert.ok(outlier.isEjected(102));
  assert.not.ok(outlier.isEjected(103));
  outlier.recordStatus(500, 110, true);
  assert.ok(outlier.recordStatus(500, 111, true));
  assert.ok(outlier.isEjected(310), 'the second ejection lasts twice as long');
  const forbidden = new OutlierDetector({ failuresMax: 1, ejectionMs: 100 });
  assert.not.ok(forbidden.recordStatus(500, 0, false));
  assert.not.ok(forbidden.isEjected(1));
});

test('retry budget: a reserve, then percent of requests', () => {
  const budget = new RetryBudget(20);
  for (let index = 0; index < RETRY_RESERVE; index++) assert.ok(budget.tryWithdraw());
  assert.not.ok(budget.tryWithdraw());
  for (let index = 0; index < 10; index++) budget.deposit();
  assert.ok(budget.tryWithdraw());
  assert.ok(budget.tryWithdraw());
  assert.not.ok(budget.tryWithdraw(), '10 requests at 20% pay for 2 retries');
});

test('retry helper: retries retryable outcomes with backoff on the injected clock, within retries, budget and deadline', async () => {
  let nowMs = 0;
  const slept: number[] = [];
  const clock = { nowMs: () => nowMs, sleep: async (ms: number) => void (slept.push(ms), (nowMs += ms)) };
  const options = { retriesMax: 3, deadlineMs: 10_000, backoff: { baseMs: 100, maxMs: 1000 }, clock, random: () => 0.5, retryable: (outcome: string) => outcome === 'fail', mayRetry: () => true };
  const outcomes = ['fail', 'fail', 'ok'];
  const result = await withRetries(async (attempt) => outcomes[attempt]!, options);
  assert.equal(result, { outcome: 'ok', attempts: 3 });
  assert.equal(slept, [50, 100]);
  const always = await withRetries(async () => 'fail', options);
  assert.is(always.attempts, 4, 'retriesMax bounds it');
  let tokens = 1;
  const budgeted = await withRetries(async () => 'fail', { ...options, mayRetry: () => tokens-- > 0 });
  assert.is(budgeted.attempts, 2, 'the budget bounds it');
  nowMs = 9_990;
  assert.is((await withRetries(async () => 'fail', options)).attempts, 1, 'no retry past the deadline');
  assert.is(backoffMs(10, { baseMs: 100, maxMs: 1000 }, () => 0.999), 999);
});

test('retry decision: the wait before retry n, or none past the retries, the deadline or the budget (asked last)', () => {
  const policy = { retriesMax: 2, deadlineMs: 1_000, backoff: { baseMs: 100, maxMs: 1000 }, random: () => 0.5 };
  let asked = 0;
  const yes = (): boolean => (asked++, true);
  assert.is(retryDelayMs(1, 0, policy, yes), 50);
  assert.is(retryDelayMs(2, 0, policy, yes), 100);
  assert.is(asked, 2);
  assert.is(retryDelayMs(3, 0, policy, yes), undefined, 'past retriesMax');
  assert.is(retryDelayMs(1, 960, policy, yes), undefined, 'the backoff would end past the deadline');
  assert.is(asked, 2, 'the budget is not asked when the answer is no anyway');
  assert.is(retryDelayMs(1, 0, policy, () => false), undefined, 'the budget says no');
});

test.run();
