/**
 * The schedule of faults, drawn from the seed: which nemesis, which variant,
 * when and for how long, and the random order of nodes that "random" targets
 * and partitions are cut from. Faults come one at a time, each healed before
 * a quiet spell and the next; "leader" targets are resolved when the fault
 * starts. Pure: the same options give the same schedule.
 */
import { assert } from '../consensus/core/assert.js';
import { SeededRandom } from './random.js';

/** The nemesis classes, as `--nemesis` names them. */
export const nemesisClasses = ['partition', 'kill', 'pause', 'loss', 'membership', 'trust'] as const;
export type NemesisClass = (typeof nemesisClasses)[number];

/** Each class's variants (`--nemesis partition:ring` picks one). */
export const variantsByClass: Readonly<Record<NemesisClass, readonly string[]>> = {
  partition: ['isolate-one', 'leader-alone', 'minority-majority', 'ring', 'bridge', 'one-way'],
  kill: ['random', 'leader'],
  pause: ['random', 'leader'],
  loss: ['all', 'one', 'leader'],
  membership: ['leave-rejoin', 'leave-rejoin-leader', 'replace-fresh'],
  trust: ['ca-rotate', 'ca-rotate-node-down'],
};

/** A nemesis class and the variants of it the run may use. */
export interface NemesisSelection {
  readonly nemesis: NemesisClass;
  readonly variants: readonly string[];
}

/**
 * Parses `--nemesis partition,kill:leader,loss`: classes, each optionally
 * narrowed to one variant. Returns an error message for an unknown name.
 */
export function parseNemesisList(text: string): NemesisSelection[] | string {
  const selections = new Map<NemesisClass, Set<string>>();
  for (const part of text.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    const [name, variant] = part.split(':') as [string, string | undefined];
    if (!(nemesisClasses as readonly string[]).includes(name)) {
      return `unknown nemesis "${name}": use one or more of ${nemesisClasses.join(', ')} (optionally class:variant)`;
    }
    const nemesis = name as NemesisClass;
    const known = variantsByClass[nemesis];
    if (variant !== undefined && !known.includes(variant)) {
      return `unknown variant "${variant}" of nemesis ${nemesis}: use one of ${known.join(', ')}`;
    }
    const chosen = selections.get(nemesis) ?? new Set<string>();
    for (const item of variant === undefined ? known : [variant]) chosen.add(item);
    selections.set(nemesis, chosen);
  }
  return [...selections].map(([nemesis, variants]) => ({ nemesis, variants: [...variants] }));
}

/** One fault of the schedule. Times are milliseconds from the start of the workload. */
export interface PlannedFault {
  /** 1, 2, ... in start order. */
  readonly id: number;
  readonly nemesis: NemesisClass;
  readonly variant: string;
  readonly startMs: number;
  readonly durationMs: number;
  /** A permutation of node positions: random targets are its first entries; partitions are cut from it. */
  readonly order: readonly number[];
  /** For `loss`: the chance that a packet from a peer is dropped. */
  readonly lossProbability: number;
}

/** What `planSchedule` needs. */
export interface ScheduleOptions {
  readonly seed: number;
  readonly nodeCount: number;
  /** Length of the faulty phase; every fault ends by then. */
  readonly timeMs: number;
  readonly selections: readonly NemesisSelection[];
  /** Fault-free time at the start. */
  readonly warmupMs?: number;
  readonly faultMsMin?: number;
  readonly faultMsMax?: number;
  readonly quietMsMin?: number;
  readonly quietMsMax?: number;
}

/** A fault shorter than this is not scheduled (the end of the run is near). */
const FAULT_MS_MIN_USEFUL = 2000;

/** The faults of one run, in start order, none overlapping. */
export function planSchedule(options: ScheduleOptions): PlannedFault[] {
  const { seed, nodeCount, timeMs, selections } = options;
  const warmupMs = options.warmupMs ?? 3000;
  const faultMsMin = options.faultMsMin ?? 5000;
  const faultMsMax = options.faultMsMax ?? 12_000;
  const quietMsMin = options.quietMsMin ?? 3000;
  const quietMsMax = options.quietMsMax ?? 6000;
  assert(nodeCount >= 1 && Number.isSafeInteger(nodeCount), `nodeCount must be a positive whole number, got ${nodeCount}`);
  assert(faultMsMin <= faultMsMax && quietMsMin <= quietMsMax, 'fault and quiet ranges must have min <= max');
  if (selections.length === 0) return [];
  const random = SeededRandom.derive(seed, 'schedule');
  const positions = Array.from({ length: nodeCount }, (_, position) => position);
  const faults: PlannedFault[] = [];
  let time = warmupMs;
  while (time + FAULT_MS_MIN_USEFUL <= timeMs) {
    const selection = random.pick(selections);
    const variant = random.pick(selection.variants);
    const durationMs = Math.min(random.integer(faultMsMin, faultMsMax), timeMs - time);
    const order = random.shuffle(positions);
    const lossProbability = variant === 'all' ? random.pick([0.1, 0.2, 0.3]) : random.pick([0.3, 0.5]);
    faults.push({ id: faults.length + 1, nemesis: selection.nemesis, variant, startMs: time, durationMs, order, lossProbability: selection.nemesis === 'loss' ? lossProbability : 0 });
    time += durationMs + random.integer(quietMsMin, quietMsMax);
  }
  return faults;
}

/**
 * Who drops whose packets during a partition: for each node position, the
 * positions whose packets it drops on arrival. `leader` is the leader's
 * position when known (for `leader-alone`); else the first of `order`.
 */
export function partitionGrudge(variant: string, order: readonly number[], leader: number | undefined): Map<number, number[]> {
  const count = order.length;
  assert(count >= 2, 'a partition needs at least two nodes');
  const grudge = new Map<number, number[]>(order.map((position) => [position, []]));
  const drop = (at: number, from: number) => grudge.get(at)!.push(from);
  const split = (sideA: readonly number[], sideB: readonly number[]) => {
    for (const a of sideA) for (const b of sideB) {
      drop(a, b);
      drop(b, a);
    }
  };
  const first = order[0]!;
  switch (variant) {
    case 'isolate-one':
      split([first], order.slice(1));
      break;
    case 'leader-alone': {
      const alone = leader ?? first;
      split([alone], order.filter((position) => position !== alone));
      break;
    }
    case 'minority-majority': {
      const minority = Math.max(1, Math.floor((count - 1) / 2));
      split(order.slice(0, minority), order.slice(minority));
      break;
    }
    case 'ring': {
      // Each node hears a majority of consecutive nodes around it in the ring, and no two hear the same one.
      const majority = Math.floor(count / 2) + 1;
      const before = Math.floor((majority - 1) / 2);
      for (let index = 0; index < count; index++) {
        const heard = new Set<number>();
        for (let offset = -before; offset < majority - before; offset++) heard.add(order[(index + offset + count) % count]!);
        for (const other of order) if (!heard.has(other)) drop(order[index]!, other);
      }
      break;
    }
    case 'bridge': {
      // One node hears everyone; the others form two halves that hear only their own half and the bridge.
      const rest = order.slice(1);
      const half = Math.ceil(rest.length / 2);
      split(rest.slice(0, half), rest.slice(half));
      break;
    }
    case 'one-way':
      // The node still sends, but hears no peer.
      for (const other of order.slice(1)) drop(first, other);
      break;
    default:
      assert(false, `unknown partition variant ${variant}`);
  }
  return grudge;
}
