/**
 * The real RaftNode on virtual time: its ticks, request time limits and loop
 * turns go through the injected timers, so a VirtualClock alone moves it,
 * exactly (no wall clock, no sleeps), over MemoryStorage and the simulated network.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../core/random.js';
import { DEFAULT_OPTIONS, type ClusterConfig, type Entry } from '../core/types.js';
import { TimeoutError } from '../errors.js';
import { RaftNode, type StateMachine } from '../node.js';
import { SimNetwork } from '../sim/network.js';
import { VirtualClock, settle } from '../sim/virtual-clock.js';
import { MemoryDisk, MemoryStorage } from '../storage-memory.js';

const TICK_MS = 10;
const DISK_MS = 2;

class ListMachine implements StateMachine {
  items: string[] = [];
  apply(entry: Entry): unknown {
    this.items.push(new TextDecoder().decode(entry.data));
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(new TextDecoder().decode(data)) as string[];
  }
}

/** One virtual world: a clock, a network without faults, and nodes on in-memory disks that take DISK_MS per write. */
function world(): { clock: VirtualClock; node: (id: string, bootstrap: ClusterConfig | undefined, options?: { requestTimeoutMs?: number }) => { raft: RaftNode; machine: ListMachine } } {
  const clock = new VirtualClock();
  const network = new SimNetwork(clock, new SeededRandom(1), { dropRate: 0, duplicateRate: 0, delayMsMax: 1 }, () => {});
  const node = (id: string, bootstrap: ClusterConfig | undefined, options: { requestTimeoutMs?: number } = {}) => {
    const machine = new ListMachine();
    const raft = new RaftNode({
      id,
      storage: new MemoryStorage({ disk: new MemoryDisk(() => clock.nowMs), delay: (complete) => clock.schedule(DISK_MS, complete) }),
      transport: network.transport(id, () => true),
      stateMachine: machine,
      tickMs: TICK_MS,
      seed: id.charCodeAt(0),
      timers: clock.timers(() => true),
      readContextPrefix: id,
      ...options,
    });
    void raft.start(bootstrap === undefined ? {} : { bootstrap });
    return { raft, machine };
  };
  return { clock, node };
}

/** Runs events (and every continuation they set off) until `done()` or no event is left before `untilMs`. */
async function runUntil(clock: VirtualClock, done: () => boolean, untilMs: number): Promise<void> {
  await settle();
  while (!done()) {
    const next = clock.nextTimeMs();
    if (next === undefined || next > untilMs) return;
    clock.runNext();
    await settle();
  }
}

function track<T>(promise: Promise<T>): { settled: () => boolean; result: () => T | Error } {
  let outcome: { value: T } | { error: Error } | undefined;
  promise.then((value) => (outcome = { value }), (error: Error) => (outcome = { error }));
  return {
    settled: () => outcome !== undefined,
    result: () => (outcome === undefined ? new Error('not settled') : 'error' in outcome ? outcome.error : outcome.value),
  };
}

test('a lone node leads, and applies a proposal one disk write of virtual time after it is made', async () => {
  const { clock, node } = world();
  const { raft, machine } = node('a', { voters: ['a'], learners: [] });
  await runUntil(clock, () => raft.rawForInspection?.leader === 'a', 1000);
  assert.is(raft.status().leader, 'a');
  const first = track(raft.propose(new TextEncoder().encode('x')));
  await runUntil(clock, first.settled, 1000);
  // Until the writes the election and the first proposal left behind are done.
  await runUntil(clock, () => false, 100);
  const proposal = track(raft.propose(new TextEncoder().encode('y')));
  const startedMs = clock.nowMs;
  await runUntil(clock, proposal.settled, 1000);
  assert.equal(machine.items, ['x', 'y']);
  // One synced write (DISK_MS) between the proposal and its apply: the node waits on nothing else.
  assert.is(clock.nowMs - startedMs, DISK_MS, `proposed at ${startedMs} ms, applied at ${clock.nowMs} ms`);
});

test('a node that leads alone does not tick (idle, it leaves no timer); once a learner is added it ticks again, and the learner hears it', async () => {
  const { clock, node } = world();
  const a = node('a', { voters: ['a'], learners: [] });
  await runUntil(clock, () => a.raft.rawForInspection?.leader === 'a', 1000);
  // Whatever the election left behind runs out, and then nothing is scheduled at all.
  await runUntil(clock, () => false, clock.nowMs + 100 * TICK_MS);
  assert.is(clock.nextTimeMs(), undefined, 'an idle lone leader set a timer');
  const b = node('b', undefined);
  const added = track(a.raft.addLearner('b', 'b'));
  await runUntil(clock, () => added.settled() && b.raft.status().leader === 'a', clock.nowMs + 1000);
  assert.is(b.raft.status().leader, 'a');
  const heardAtMs = clock.nowMs;
  // Heartbeats every interval: the leader ticks, and keeps the learner hearing it.
  await runUntil(clock, () => false, heardAtMs + 2 * DEFAULT_OPTIONS.electionTimeoutTicks * TICK_MS);
  assert.is(clock.nowMs, heardAtMs + 2 * DEFAULT_OPTIONS.electionTimeoutTicks * TICK_MS, 'the leader went quiet with a learner to heartbeat');
  assert.ok(b.raft.status().silentTicks < DEFAULT_OPTIONS.electionTimeoutTicks, `the learner went ${b.raft.status().silentTicks} ticks without hearing the leader`);
});

test('a request times out after exactly its time limit of virtual time', async () => {
  const { clock, node } = world();
  const voters = { voters: ['a', 'b'], learners: [] };
  const a = node('a', voters, { requestTimeoutMs: 700 });
  const b = node('b', voters);
  await runUntil(clock, () => a.raft.rawForInspection?.leader === 'a' || b.raft.rawForInspection?.leader === 'b', 1000);
  const leader = a.raft.rawForInspection?.leader === 'a' ? a.raft : b.raft;
  // The follower stops: nothing commits any more.
  await (leader === a.raft ? b.raft : a.raft).stop();
  const startedMs = clock.nowMs;
  const proposal = track(leader.propose(new TextEncoder().encode('x'), { timeoutMs: 700 }));
  await runUntil(clock, proposal.settled, 10_000);
  assert.instance(proposal.result(), TimeoutError);
  assert.is(clock.nowMs - startedMs, 700);
});

test('a follower campaigns only once its election timeout of virtual ticks has passed', async () => {
  const { clock, node } = world();
  const voters = { voters: ['a', 'b', 'c'], learners: [] };
  const nodes = ['a', 'b', 'c'].map((id) => node(id, voters).raft);
  await runUntil(clock, () => nodes.some((raft) => raft.rawForInspection?.leader !== undefined && raft.rawForInspection.leader !== ''), 5000);
  const options = DEFAULT_OPTIONS;
  // Randomized in [electionTimeoutTicks, 2 * electionTimeoutTicks), plus the votes' disk writes and trips.
  assert.ok(clock.nowMs >= options.electionTimeoutTicks * TICK_MS, `a leader after ${clock.nowMs} ms`);
  assert.ok(clock.nowMs < 2 * options.electionTimeoutTicks * TICK_MS + 20 * DISK_MS, `a leader only after ${clock.nowMs} ms`);
});

test.run();
