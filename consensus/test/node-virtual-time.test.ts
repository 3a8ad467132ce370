/**
 * The real RaftNode on virtual time: its ticks, request time limits and loop
 * turns go through the injected timers, so a VirtualClock alone moves it,
 * exactly (no wall clock, no sleeps), over MemoryStorage and the simulated network.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeededRandom } from '../core/random.js';
import { DEFAULT_OPTIONS, Role, type ClusterConfig, type Entry } from '../core/types.js';
import { TimeoutError } from '../errors.js';
import { RaftNode, type RaftNodeOptions, type StateMachine } from '../node.js';
import { SimNetwork } from '../sim/network.js';
import { VirtualClock, settle } from '../sim/virtual-clock.js';
import { MemoryDisk, MemoryStorage } from '../storage-memory.js';
import type { TimerHandle, Timers } from '../timers.js';

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

/** A RaftNode `id` on `clock` and `network`, its in-memory disk taking DISK_MS per write; `options` add the state machine, timers and the rest. */
function virtualNode(id: string, clock: VirtualClock, network: SimNetwork, options: Pick<RaftNodeOptions, 'stateMachine' | 'timers'> & Partial<RaftNodeOptions>): RaftNode {
  return new RaftNode({
    id,
    storage: new MemoryStorage({ disk: new MemoryDisk(() => clock.nowMs), delay: (complete) => clock.schedule(DISK_MS, complete) }),
    transport: network.transport(id, () => true),
    tickMs: TICK_MS,
    seed: id.charCodeAt(0),
    readContextPrefix: id,
    ...options,
  });
}

/** One virtual world: a clock, a network without faults, and nodes on in-memory disks that take DISK_MS per write. */
function world(): { clock: VirtualClock; node: (id: string, bootstrap: ClusterConfig | undefined, options?: { requestTimeoutMs?: number }) => { raft: RaftNode; machine: ListMachine } } {
  const clock = new VirtualClock();
  const network = new SimNetwork(clock, new SeededRandom(1), { dropRate: 0, duplicateRate: 0, delayMsMax: 1 }, () => {});
  const node = (id: string, bootstrap: ClusterConfig | undefined, options: { requestTimeoutMs?: number } = {}) => {
    const machine = new ListMachine();
    const raft = virtualNode(id, clock, network, { stateMachine: machine, timers: clock.timers(() => true), ...options });
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

/**
 * One CPU per node on virtual time: the work a callback does (`spend`) keeps
 * the node busy, and its callbacks that fall due meanwhile (ticks, turns of
 * its loop, messages reaching it) wait until it is free, as a process's
 * callbacks wait behind a long one. `nowMs` counts the work done, so the
 * driver's turn budget sees it. (A message the node sends leaves at the
 * virtual time its callback began: early by at most one turn's work.)
 */
class BusyCpu {
  private busyUntilMs = 0;

  constructor(private readonly clock: VirtualClock) {}

  /** The callback running now works `ms` more. */
  spend(ms: number): void {
    this.busyUntilMs = Math.max(this.busyUntilMs, this.clock.nowMs) + ms;
  }

  /** `base`'s timers, their callbacks run once this CPU is free; with a clock of the work done unless `withClock` is false. */
  timers(base: Timers, withClock: boolean): Timers {
    const handle = (schedule: (callback: () => void) => TimerHandle, callback: () => void): TimerHandle => {
      let cancelled = false;
      const inner = schedule(() => this.runWhenFree(() => cancelled || callback()));
      return { cancel: () => ((cancelled = true), inner.cancel()) };
    };
    return {
      setTimeout: (callback, delayMs) => handle((wrapped) => base.setTimeout(wrapped, delayMs), callback),
      setInterval: (callback, intervalMs) => handle((wrapped) => base.setInterval(wrapped, intervalMs), callback),
      setImmediate: (callback) => base.setImmediate(() => this.runWhenFree(callback)),
      ...(withClock && { nowMs: () => Math.max(this.clock.nowMs, this.busyUntilMs) }),
    };
  }

  private runWhenFree(callback: () => void): void {
    const waitMs = this.busyUntilMs - this.clock.nowMs;
    if (waitMs > 0) this.clock.schedule(waitMs, () => this.runWhenFree(callback));
    else callback();
  }
}

/** A state machine whose applies cost `applyMs` of its node's CPU while `slow`. */
class SlowMachine extends ListMachine {
  slow = false;
  constructor(private readonly cpu: BusyCpu, private readonly applyMs: number) {
    super();
  }
  override apply(entry: Entry): unknown {
    if (this.slow) this.cpu.spend(this.applyMs);
    return super.apply(entry);
  }
}

/**
 * Three nodes, each on its own BusyCpu; once one leads, its applies turn slow
 * (4 ms each) and 400 proposals reach it at once: 1.6 s of applying, 16
 * election timeouts of its followers. Returns the leader before and after,
 * the terms seen, and what every node applied.
 */
async function slowLeaderRun(options: { withClock: boolean }): Promise<{ before: string; after: string; terms: number[]; applied: number[] }> {
  const clock = new VirtualClock();
  const network = new SimNetwork(clock, new SeededRandom(1), { dropRate: 0, duplicateRate: 0, delayMsMax: 1 }, () => {});
  const voters = { voters: ['a', 'b', 'c'], learners: [] };
  const nodes = ['a', 'b', 'c'].map((id) => {
    const cpu = new BusyCpu(clock);
    const machine = new SlowMachine(cpu, 4);
    const raft = virtualNode(id, clock, network, { stateMachine: machine, timers: cpu.timers(clock.timers(() => true), options.withClock) });
    void raft.start({ bootstrap: voters });
    return { id, raft, machine };
  });
  const leaderNow = (): string => nodes.find((node) => node.raft.rawForInspection?.role === Role.Leader)?.id ?? '';
  await runUntil(clock, () => leaderNow() !== '', 5000);
  const before = leaderNow();
  const leader = nodes.find((node) => node.id === before)!;
  const first = track(leader.raft.propose(new TextEncoder().encode('warm')));
  await runUntil(clock, first.settled, clock.nowMs + 1000);
  leader.machine.slow = true;
  const proposals = Array.from({ length: 400 }, (_, i) => track(leader.raft.propose(new TextEncoder().encode(`p${i}`), { timeoutMs: 60_000 })));
  const startedMs = clock.nowMs;
  await runUntil(clock, () => proposals.every((proposal) => proposal.settled()) && nodes.every((node) => node.machine.items.length >= 401), startedMs + 30_000);
  // The followers may apply everything before the leader's CPU has worked off its backlog: run on until well after.
  await runUntil(clock, () => false, startedMs + 3000);
  return {
    before,
    after: leaderNow(),
    terms: nodes.map((node) => node.raft.rawForInspection!.term),
    applied: nodes.map((node) => node.machine.items.length),
  };
}

test('a leader with a backlog of slow applies keeps leading: its loop lets ticks and votes in every 10 ms of work', async () => {
  const run = await slowLeaderRun({ withClock: true });
  assert.is(run.after, run.before, `the leader changed from ${run.before} to ${run.after}`);
  assert.ok(run.terms.every((term) => term === run.terms[0]), `terms ${run.terms}`);
  assert.equal(run.applied, [401, 401, 401]);
});

test('the same backlog in one turn (timers without a clock, 1,024 entries a turn) deposes the leader: the test above is not vacuous', async () => {
  const run = await slowLeaderRun({ withClock: false });
  assert.ok(run.after !== run.before || run.terms.some((term) => term !== run.terms[0]), `leader ${run.before} kept leading, terms ${run.terms}`);
});

test.run();
