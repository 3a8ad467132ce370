/**
 * State transitions of one SWIM member, driven by hand: updates in, events
 * and datagrams out. Time is explicit; no timers or sockets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../../../consensus/core/random.js';
import { estimateBytes, type Message, type Update } from '../messages.js';
import { Swim, type SwimOptions } from '../swim.js';

const address = (id: string): string => `${id}.test:7072`;
const alive = (id: string, incarnation = 0): Update => ({ type: 'alive', id, address: address(id), meta: {}, incarnation });

/** The timings these scripts were written for (memberlist's LAN profile), whatever the defaults become. */
const scriptTimings: Partial<SwimOptions> = { probeIntervalMs: 1000, probeTimeoutMs: 500, suspicionMultiplier: 4, pushPullIntervalMs: 0 };

/** A member `a` that knows `others` as alive. */
function member(others: string[], options: Partial<SwimOptions> = {}, id = 'a', probing = true): Swim {
  const swim = new Swim({ self: { id, address: address(id), meta: {} }, random: new SeededRandom(1), options: { ...scriptTimings, ...options } });
  if (probing) swim.join([]);
  swim.receive(address('x'), { type: 'gossip', from: 'x', piggyback: others.map((o) => alive(o)) }, 0);
  swim.drainEvents();
  swim.drainOutbox();
  return swim;
}

function gossip(swim: Swim, nowMs: number, ...updates: Update[]): void {
  swim.receive(address('x'), { type: 'gossip', from: 'x', piggyback: updates }, nowMs);
}

/** The outgoing datagrams other than plain gossip pushes. */
const protocol = <T extends { message: Message }>(out: T[]): T[] => out.filter((o) => o.message.type !== 'gossip');
const suspect = (id: string, from: string, incarnation = 0): Update => ({ type: 'suspect', id, incarnation, from });
const state = (swim: Swim, id: string) => swim.snapshot().find((m) => m.id === id);

test('new members raise up once each', () => {
  const swim = new Swim({ self: { id: 'a', address: address('a'), meta: {} }, random: new SeededRandom(1) });
  gossip(swim, 5, alive('b'), alive('c'), alive('b'));
  assert.equal(swim.drainEvents().map((e) => `${e.type} ${e.id}`), ['up b', 'up c']);
});

test('suspect is refuted by a higher incarnation', () => {
  const swim = member(['b', 'c', 'd']);
  gossip(swim, 10, suspect('b', 'c'));
  assert.is(state(swim, 'b')?.state, 'suspect');
  gossip(swim, 20, alive('b', 0)); // same incarnation does not refute
  assert.is(state(swim, 'b')?.state, 'suspect');
  gossip(swim, 30, alive('b', 1));
  assert.is(state(swim, 'b')?.state, 'alive');
  assert.equal(swim.drainEvents().map((e) => [e.type, e.id, e.incarnation, e.atMs]), [
    ['suspect', 'b', 0, 10],
    ['alive-again', 'b', 1, 30],
  ]);
  swim.tick(1_000_000);
  assert.ok(swim.drainEvents().every((e) => e.type !== 'dead'), 'a refuted suspicion never times out');
});

test('a suspected member refutes at once: higher incarnation, alive sent straight back', () => {
  const swim = member(['c', 'd'], {}, 'b');
  swim.receive(address('c'), { type: 'gossip', from: 'c', piggyback: [suspect('b', 'c')] }, 100);
  assert.is(swim.selfIncarnation, 1);
  assert.is(swim.healthMultiplier, 2, 'being suspected lowers our own health');
  const out = swim.drainOutbox();
  const reply = out.find((o) => o.to === address('c'));
  assert.ok(reply?.message.piggyback.some((u) => u.type === 'alive' && u.id === 'b' && u.incarnation === 1));
  // A stale accusation (an older incarnation) does not bump it again, but is answered.
  swim.receive(address('d'), { type: 'gossip', from: 'd', piggyback: [suspect('b', 'd', 0)] }, 200);
  assert.is(swim.selfIncarnation, 1);
  assert.ok(swim.drainOutbox().some((o) => o.to === address('d') && o.message.piggyback.some((u) => u.type === 'alive' && u.incarnation === 1)));
});

test('the suspect message also goes to the suspected member', () => {
  const swim = member(['b', 'c', 'd']);
  gossip(swim, 10, suspect('b', 'c'));
  const toSuspect = swim.drainOutbox().filter((o) => o.to === address('b'));
  assert.ok(toSuspect.some((o) => o.message.piggyback.some((u) => u.type === 'suspect' && u.id === 'b')));
});

test('suspect becomes dead after the timeout (Lifeguard: starts at the maximum)', () => {
  const swim = member(['b', 'c', 'd']); // n = 4: min = 4 s, max = 24 s
  gossip(swim, 0, suspect('b', 'c'));
  assert.is(swim.suspicionTimeoutMs('b'), 24_000);
  swim.tick(23_999);
  assert.is(state(swim, 'b')?.state, 'suspect');
  swim.tick(24_000);
  assert.is(state(swim, 'b')?.state, 'dead');
  assert.equal(swim.drainEvents().map((e) => e.type), ['suspect', 'dead']);
  gossip(swim, 25_000, alive('b', 0));
  assert.is(state(swim, 'b')?.state, 'dead', 'an old alive cannot resurrect');
  gossip(swim, 26_000, alive('b', 1));
  assert.equal(swim.drainEvents().map((e) => e.type), ['alive-again']);
});

test('independent confirmations shrink the suspicion timeout toward the minimum (log scale)', () => {
  const swim = member(['b', 'c', 'd', 'e']); // n = 5: min 4 s, max 24 s, expected 2
  gossip(swim, 0, suspect('b', 'c'));
  assert.is(swim.suspicionTimeoutMs('b'), 24_000);
  gossip(swim, 100, suspect('b', 'c')); // the accuser again: no confirmation
  assert.is(swim.suspicionTimeoutMs('b'), 24_000);
  gossip(swim, 200, suspect('b', 'd'));
  const once = 24_000 - (Math.log(2) / Math.log(3)) * 20_000;
  assert.is(swim.suspicionTimeoutMs('b'), Math.floor(once));
  gossip(swim, 300, suspect('b', 'd')); // repeated confirmer: no change
  assert.is(swim.suspicionTimeoutMs('b'), Math.floor(once));
  gossip(swim, 400, suspect('b', 'e'));
  assert.is(swim.suspicionTimeoutMs('b'), 4_000);
  swim.tick(3_999);
  assert.is(state(swim, 'b')?.state, 'suspect');
  swim.tick(4_000);
  assert.is(state(swim, 'b')?.state, 'dead');
});

test('without Lifeguard the suspicion timeout is fixed at the minimum', () => {
  const swim = member(['b', 'c', 'd', 'e'], { lifeguard: false });
  gossip(swim, 0, suspect('b', 'c'));
  assert.is(swim.suspicionTimeoutMs('b'), 4_000);
  assert.not.ok(swim.drainOutbox().some((o) => o.to === address('b')), 'no buddy message without Lifeguard');
});

/** Starts a probe at 0 and moves it to the indirect stage; returns the ping-req helpers. */
function probeToIndirect(swim: Swim): { target: string; sequence: number; helpers: string[] } {
  swim.tick(0);
  const ping = swim.drainOutbox().find((o) => o.message.type === 'ping');
  assert.ok(ping !== undefined && ping.message.type === 'ping');
  swim.tick(499);
  assert.is(swim.drainOutbox().filter((o) => o.message.type === 'ping-req').length, 0, 'indirect probes wait for the probe timeout');
  swim.tick(500);
  const requests = swim.drainOutbox().filter((o) => o.message.type === 'ping-req');
  const target = ping.message.target!;
  for (const r of requests) assert.ok(r.message.type === 'ping-req' && r.message.target === target && r.to !== address(target));
  return { target, sequence: ping.message.sequence, helpers: requests.map((r) => r.message.from === 'a' ? r.to : '') };
}

test('failed probe with every nack: target suspected, our health unchanged', () => {
  const swim = member(['b', 'c', 'd', 'e']);
  const { target, sequence, helpers } = probeToIndirect(swim);
  assert.is(helpers.length, 3);
  for (const helper of helpers) swim.receive(helper, { type: 'nack', sequence, from: 'h', piggyback: [] }, 900);
  swim.tick(1000);
  assert.is(state(swim, target)?.state, 'suspect');
  assert.is(swim.healthMultiplier, 1);
});

test('missing nacks raise the local health multiplier, which stretches the probe interval; acks lower it', () => {
  const swim = member(['b', 'c', 'd', 'e']);
  const { sequence, helpers } = probeToIndirect(swim);
  swim.receive(helpers[0]!, { type: 'nack', sequence, from: 'h', piggyback: [] }, 900);
  swim.tick(1000); // this probe fails and the next starts, stretched 3×
  assert.is(swim.healthMultiplier, 3, 'two of three nacks missing');
  const ping = swim.drainOutbox().find((o) => o.message.type === 'ping');
  assert.ok(ping !== undefined && ping.message.type === 'ping');
  swim.tick(1000 + 1499);
  assert.not.ok(swim.drainOutbox().some((o) => o.message.type === 'ping-req'));
  swim.tick(1000 + 1500);
  assert.ok(swim.drainOutbox().some((o) => o.message.type === 'ping-req'));
  swim.receive(ping.to, { type: 'ack', sequence: ping.message.sequence, from: 'x', piggyback: [] }, 2600);
  assert.is(swim.healthMultiplier, 2);
});

test('a helper relays the ack, or sends a nack when the target stays silent', () => {
  const swim = member(['b', 'c'], {}, 'h', false);
  swim.receive(address('a'), { type: 'ping-req', sequence: 7, from: 'a', target: 'b', targetAddress: address('b'), piggyback: [] }, 0);
  const ping = swim.drainOutbox()[0];
  assert.ok(ping?.to === address('b') && ping.message.type === 'ping' && ping.message.target === 'b');
  swim.tick(399);
  assert.is(protocol(swim.drainOutbox()).length, 0);
  swim.tick(400);
  assert.equal(protocol(swim.drainOutbox()).map((o) => [o.to, o.message.type, 'sequence' in o.message ? o.message.sequence : -1]), [[address('a'), 'nack', 7]]);
  swim.receive(address('b'), { type: 'ack', sequence: ping.message.sequence, from: 'b', piggyback: [] }, 450);
  assert.equal(protocol(swim.drainOutbox()).map((o) => [o.to, o.message.type, 'sequence' in o.message ? o.message.sequence : -1]), [[address('a'), 'ack', 7]]);
  // Without Lifeguard no nack is sent.
  const classic = member(['b', 'c'], { lifeguard: false }, 'h', false);
  classic.receive(address('a'), { type: 'ping-req', sequence: 7, from: 'a', target: 'b', targetAddress: address('b'), piggyback: [] }, 0);
  classic.drainOutbox();
  classic.tick(5000);
  assert.not.ok(classic.drainOutbox().some((o) => o.message.type === 'nack'));
});

test('a ping meant for another id is ignored', () => {
  const swim = member(['b']);
  swim.receive(address('b'), { type: 'ping', sequence: 1, from: 'b', target: 'z', piggyback: [] }, 0);
  assert.is(swim.drainOutbox().length, 0);
  swim.receive(address('b'), { type: 'ping', sequence: 2, from: 'b', target: 'a', piggyback: [] }, 0);
  assert.equal(swim.drainOutbox().map((o) => o.message.type), ['ack']);
});

test('each update is piggybacked at most lambda*ceil(log10(n+1)) times, least-sent first', () => {
  const others = Array.from({ length: 9 }, (_, i) => `m${i}`);
  const swim = member(others, { retransmitMultiplier: 3, gossipIntervalMs: 1_000_000 }); // n = 10
  assert.is(swim.retransmitLimit(), 3 * Math.ceil(Math.log10(11)));
  const carried = new Map<string, number>();
  for (let i = 0; i < 40; i++) {
    swim.receive(address('m0'), { type: 'ping', sequence: i, from: 'm0', piggyback: [] }, 0);
    for (const { message } of swim.drainOutbox()) for (const u of message.piggyback) carried.set(u.id, (carried.get(u.id) ?? 0) + 1);
  }
  for (const id of others) assert.is(carried.get(id), swim.retransmitLimit(), `alive ${id} sent exactly the limit`);
  assert.is(swim.pendingBroadcasts().length, 0);
  // A fresh update goes out ahead of older ones that were already sent.
  gossip(swim, 0, suspect('m3', 'm4'));
  swim.receive(address('m0'), { type: 'ping', sequence: 99, from: 'm0', piggyback: [] }, 0);
  const ack = swim.drainOutbox().find((o) => o.message.type === 'ack');
  assert.is(ack?.message.piggyback[0]?.type, 'suspect');
});

test('piggybacked gossip stays within the packet byte budget', () => {
  const others = Array.from({ length: 200 }, (_, i) => `member-with-a-long-name-${i}`);
  const swim = member(others, { packetBytesMax: 512 });
  const pending = swim.pendingBroadcasts().length;
  swim.receive(address('x'), { type: 'ping', sequence: 1, from: 'x', piggyback: [] }, 0);
  const [ack] = swim.drainOutbox();
  assert.ok(ack !== undefined);
  assert.ok(estimateBytes(ack.message) <= 512, `ack is ${estimateBytes(ack.message)} bytes`);
  assert.ok(ack.message.piggyback.length > 0 && ack.message.piggyback.length < pending);
});

test('graceful leave: others see left, not dead; the leaver stops probing', () => {
  const leaver = member(['a', 'c'], {}, 'b');
  leaver.leave();
  const out = leaver.drainOutbox();
  assert.ok(out.length > 0);
  const message = out[0]!.message as Message;
  const swim = member(['b', 'c']);
  swim.receive(address('b'), message, 50);
  assert.equal(swim.drainEvents().map((e) => [e.type, e.id]), [['left', 'b']]);
  assert.is(state(swim, 'b')?.state, 'left');
  leaver.tick(10_000);
  assert.not.ok(leaver.drainOutbox().some((o) => o.message.type === 'ping'));
});

test('join exchanges full state with a seed', () => {
  const seed = member(['c', 'd'], {}, 's');
  const joiner = new Swim({ self: { id: 'n', address: address('n'), meta: { zone: 'z1' } }, random: new SeededRandom(2) });
  joiner.join([address('s')]);
  const [request] = joiner.drainOutbox();
  assert.ok(request?.message.type === 'sync' && request.to === address('s'));
  seed.receive(address('n'), request.message, 0);
  assert.equal(seed.drainEvents().map((e) => e.id), ['n']);
  const reply = seed.drainOutbox().find((o) => o.message.type === 'sync');
  assert.ok(reply !== undefined);
  joiner.receive(address('s'), reply.message, 5);
  assert.equal(joiner.drainEvents().map((e) => e.id).sort(), ['c', 'd', 's']);
});

test('push-pull: a full-state exchange with one live member every pushPullIntervalMs', () => {
  const swim = member(['b', 'c'], { pushPullIntervalMs: 10_000, gossipIntervalMs: 1_000_000 });
  const syncsUntil = (ms: number): string[] => {
    const targets: string[] = [];
    for (let t = 0; t <= ms; t += 100) {
      swim.tick(t);
      for (const o of swim.drainOutbox()) {
        if (o.message.type === 'sync' && o.message.reply) targets.push(o.to);
        // Every live member answers its probes.
        const target = o.message.type === 'ping' ? o.message.target : undefined;
        if (o.message.type === 'ping' && state(swim, target!)?.state === 'alive') swim.receive(o.to, { type: 'ack', sequence: o.message.sequence, from: target!, piggyback: [] }, t);
      }
    }
    return targets;
  };
  const first = syncsUntil(10_000);
  assert.is(first.length, 1, 'one exchange within the first interval');
  assert.ok([address('b'), address('c')].includes(first[0]!));
  // A member known dead is never the partner.
  gossip(swim, 10_000, { type: 'dead', id: 'b', incarnation: 0, from: 'c' }, { type: 'dead', id: 'c', incarnation: 0, from: 'b' });
  assert.equal(syncsUntil(40_000).filter((to) => to !== address('x')), []);
});

test('updateMeta gossips the new metadata under a new incarnation', () => {
  const swim = member(['b']);
  const before = swim.selfIncarnation;
  swim.updateMeta({ api: '10.0.0.1:7070' });
  assert.is(swim.selfIncarnation, before + 1);
  const other = member(['a'], {}, 'b');
  swim.receive(address('b'), { type: 'ping', sequence: 1, from: 'b', piggyback: [] }, 0);
  for (const { message } of swim.drainOutbox()) other.receive(address('a'), message, 0);
  assert.equal(state(other, 'a')?.meta, { api: '10.0.0.1:7070' });
  assert.is(state(other, 'a')?.incarnation, before + 1);
});

test('a member restarted at a higher incarnation is alive again at once', () => {
  const swim = member(['b']);
  gossip(swim, 0, { type: 'dead', id: 'b', incarnation: 3, from: 'c' });
  swim.drainEvents();
  const restarted = new Swim({ self: { id: 'b', address: address('b'), meta: {} }, incarnation: 100, random: new SeededRandom(3) });
  restarted.join([address('a')]);
  const [request] = restarted.drainOutbox();
  swim.receive(address('b'), request!.message, 10);
  assert.equal(swim.drainEvents().map((e) => [e.type, e.id, e.incarnation]), [['alive-again', 'b', 100]]);
});

test('acknowledged probes report their round-trip time', () => {
  const swim = member(['b']);
  swim.tick(0);
  const ping = swim.drainOutbox().find((o) => o.message.type === 'ping');
  assert.ok(ping !== undefined && ping.message.type === 'ping');
  swim.receive(address('b'), { type: 'ack', sequence: ping.message.sequence, from: 'b', piggyback: [] }, 7);
  assert.equal(swim.drainProbeRoundTrips(), [7]);
  assert.equal(swim.drainProbeRoundTrips(), []);
});

/** Ticks every 100 ms from `fromMs` to `toMs`, acknowledging every ping; returns the probed ids in order. */
function probedBetween(swim: Swim, fromMs: number, toMs: number): string[] {
  const probed: string[] = [];
  for (let t = fromMs; t <= toMs; t += 100) {
    swim.tick(t);
    for (const o of swim.drainOutbox()) {
      if (o.message.type !== 'ping' || o.message.target === undefined) continue;
      probed.push(o.message.target);
      swim.receive(o.to, { type: 'ack', sequence: o.message.sequence, from: o.message.target, piggyback: [] }, t);
    }
  }
  return probed;
}

test('reaping: a dead member is forgotten reapTimeoutMs after its death: view, gossip, probes, full state', () => {
  const swim = member(['b', 'c', 'd'], { reapTimeoutMs: 60_000, gossipIntervalMs: 1_000_000 });
  gossip(swim, 1000, { type: 'dead', id: 'b', incarnation: 0, from: 'c' });
  assert.is(swim.stateOf('b'), 'dead');
  assert.ok(swim.pendingBroadcasts().some((p) => p.update.id === 'b'), 'the death is being gossiped');
  assert.is(swim.nextDeadlineMs()! <= 61_000, true, 'the reap is a deadline');
  swim.tick(60_999);
  assert.is(swim.stateOf('b'), 'dead', 'not before the timeout');
  swim.tick(61_000);
  assert.is(swim.stateOf('b'), undefined);
  assert.is(swim.memberCount, 3);
  assert.not.ok(swim.snapshot().some((m) => m.id === 'b'), 'not in the full-state exchange');
  assert.not.ok(swim.pendingBroadcasts().some((p) => p.update.id === 'b'), 'no gossip about it left');
  assert.not.ok(probedBetween(swim, 61_000, 70_000).includes('b'));
  // Old news about a member it forgot does not bring it back.
  gossip(swim, 70_000, { type: 'dead', id: 'b', incarnation: 0, from: 'c' }, suspect('b', 'd'));
  swim.receive(address('c'), { type: 'sync', from: 'c', reply: false, members: [{ id: 'b', address: address('b'), meta: {}, incarnation: 0, state: 'dead' }], piggyback: [] }, 70_000);
  assert.is(swim.stateOf('b'), undefined);
  assert.equal(swim.drainEvents().filter((e) => e.id === 'b').map((e) => e.type), ['dead']);
});

test('reaping: a reaped member that comes back is learned again like a new one, with its incarnation', () => {
  const swim = member(['b', 'c'], { reapTimeoutMs: 10_000 });
  gossip(swim, 0, { type: 'dead', id: 'b', incarnation: 4, from: 'c' });
  swim.tick(10_000);
  assert.is(swim.stateOf('b'), undefined);
  swim.drainEvents();
  gossip(swim, 12_000, alive('b', 2)); // even below the incarnation it died at: nothing remembers that
  assert.equal(swim.drainEvents().map((e) => [e.type, e.id, e.incarnation]), [['up', 'b', 2]]);
  assert.is(swim.stateOf('b'), 'alive');
  assert.ok(probedBetween(swim, 12_000, 14_000).includes('b'), 'probed again within a pass');
});

test('reaping: left members too; one revived before the timeout is kept, and reaped only after its next death', () => {
  const swim = member(['b', 'c', 'd'], { reapTimeoutMs: 10_000 });
  gossip(swim, 0, { type: 'dead', id: 'b', incarnation: 0, from: 'b' }, { type: 'dead', id: 'c', incarnation: 0, from: 'd' });
  assert.is(swim.stateOf('b'), 'left');
  gossip(swim, 5000, alive('c', 1)); // c refutes
  swim.tick(10_000);
  assert.is(swim.stateOf('b'), undefined);
  assert.is(swim.stateOf('c'), 'alive', 'its older death is no reason to forget it');
  gossip(swim, 12_000, { type: 'dead', id: 'c', incarnation: 1, from: 'd' });
  swim.tick(21_999);
  assert.is(swim.stateOf('c'), 'dead');
  swim.tick(22_000);
  assert.is(swim.stateOf('c'), undefined);
  assert.is(swim.stateOf('a'), 'alive', 'never reaps itself');
  assert.is(swim.retransmitLimit(), 4 * Math.ceil(Math.log10(2 + 1)), 'the live count is a and d');
});


test('a member alone is idle: no other member, nothing pending; a member heard of ends it, and the overdue probe runs at once', () => {
  const swim = member([], { pushPullIntervalMs: 30_000 });
  swim.tick(0);
  swim.updateMeta({ role: 'changed' }); // a pending broadcast, with nobody to send it to
  swim.drainOutbox();
  assert.ok(swim.idleAlone, 'alone');
  gossip(swim, 50_000, alive('b'));
  assert.not.ok(swim.idleAlone, 'b is known');
  const deadline = swim.nextDeadlineMs();
  assert.ok(deadline !== undefined && deadline <= 50_000, `the overdue probe is due now, got ${deadline}`);
  swim.tick(50_000);
  assert.ok(protocol(swim.drainOutbox()).some((o) => o.message.type === 'ping' && o.to === address('b')), 'b is probed');
});

test('a member is not idle alone while a dead member waits to be reaped, nor before it joined', () => {
  const swim = member(['b'], { gossipIntervalMs: 1_000_000, reapTimeoutMs: 60_000 });
  gossip(swim, 10, { type: 'dead', id: 'b', incarnation: 0, from: 'c' });
  swim.tick(5_000);
  assert.not.ok(swim.idleAlone, 'b is dead, not reaped: its reap is a deadline');
  swim.tick(60_010);
  assert.is(swim.stateOf('b'), undefined);
  assert.ok(swim.idleAlone, 'reaped: alone again');
  const unjoined = member([], {}, 'z', false);
  assert.not.ok(unjoined.idleAlone, 'not joined');
});

test.run();
