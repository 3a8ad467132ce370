/**
 * Load balancing: which of an app's available backends takes a request.
 * Pure and synchronous: randomness comes in as a function (seeded in tests),
 * and the state that spans requests (cursors, smooth weights) lives in a
 * `BalanceState` the caller keeps per app.
 *
 * A rollout's split is applied first (a version chosen by smooth weighted
 * round-robin over the shares, so 20% is 20% over every 5 requests, not on
 * average), then the app's balancer picks among that version's backends:
 * - round-robin: in turn;
 * - least-request: power of two choices, the one with fewer requests in flight;
 * - weighted: smooth weighted round-robin over all backends, each weighing
 *   its version's share divided among that version's backends (one pass does
 *   the split and the spread); without a split every backend weighs the same;
 * - hash: rendezvous (highest random weight) hashing of the request's key
 *   (a header or cookie), so a key keeps its backend while it is available
 *   and only the keys of a backend that leaves move; no key: round-robin.
 */
import { assert } from '../../consensus/core/assert.js';
import type { BackendTarget } from './route-table.js';
import type { ProxySettings } from './settings.js';
import type { VersionShare } from './traffic-split.js';

/** A backend that may take the request, with what the balancer reads of it. */
export interface Candidate {
  readonly target: BackendTarget;
  /** Requests in flight to it through this proxy. */
  readonly inFlight: number;
}

/** What spans requests, per app. Owned by the caller; starts from `newBalanceState()`. */
export interface BalanceState {
  cursor: number;
  /** Smooth weighted round-robin's current weights, by backend instance id. */
  readonly backendWeights: Map<string, number>;
  /** The same over versions, for the split. */
  readonly versionWeights: Map<number, number>;
}

export interface PickInput {
  readonly balance: ProxySettings['balance'];
  readonly split: readonly VersionShare[] | undefined;
  /** The hash key of the request (balance "hash"); undefined when the request has none. */
  readonly hashKey?: string | undefined;
  /** Uniform in [0, 1). */
  readonly random: () => number;
}

/** Smooth weights kept for backends no longer present are dropped past this many entries per candidate. */
const STALE_WEIGHTS_FACTOR = 4;

export function newBalanceState(): BalanceState {
  return { cursor: 0, backendWeights: new Map(), versionWeights: new Map() };
}

/** The index in `candidates` of the backend that takes the request. `candidates` must not be empty. */
export function pickBackend(candidates: readonly Candidate[], state: BalanceState, input: PickInput): number {
  assert(candidates.length > 0, 'pickBackend: no candidates');
  if (candidates.length === 1) return 0;
  if (input.balance === 'weighted') return pickWeighted(candidates, state, input.split);
  // Without a split every candidate is in play: its index is its position (no index list made per request).
  let indexes: readonly number[] | undefined;
  if (input.split !== undefined) {
    const version = pickVersion(candidates, state, input.split);
    if (version !== undefined) {
      indexes = [];
      for (let index = 0; index < candidates.length; index++) if (candidates[index]!.target.version === version) (indexes as number[]).push(index);
      if (indexes.length === 1) return indexes[0]!;
    }
  }
  const count = indexes === undefined ? candidates.length : indexes.length;
  const at = (position: number): number => (indexes === undefined ? position : indexes[position]!);
  switch (input.balance) {
    case 'least-request':
      return pickLeastRequest(candidates, count, at, input.random);
    case 'hash':
      return input.hashKey === undefined ? pickRoundRobin(count, at, state) : pickRendezvous(candidates, count, at, input.hashKey);
    default:
      return pickRoundRobin(count, at, state);
  }
}

function pickRoundRobin(count: number, at: (position: number) => number, state: BalanceState): number {
  const index = at(state.cursor % count);
  state.cursor = (state.cursor + 1) % 0x7fffffff;
  return index;
}

/** Power of two choices: two distinct random candidates, the one with fewer in flight (the first on a tie). */
function pickLeastRequest(candidates: readonly Candidate[], count: number, at: (position: number) => number, random: () => number): number {
  const first = Math.floor(random() * count);
  let second = Math.floor(random() * (count - 1));
  if (second >= first) second++;
  const a = at(first);
  const b = at(second);
  return candidates[b]!.inFlight < candidates[a]!.inFlight ? b : a;
}

function pickRendezvous(candidates: readonly Candidate[], count: number, at: (position: number) => number, key: string): number {
  let best = at(0);
  let bestScore = -1;
  for (let position = 0; position < count; position++) {
    const index = at(position);
    const score = hash32(`${key}\u0000${candidates[index]!.target.instance}`);
    if (score > bestScore) {
      best = index;
      bestScore = score;
    }
  }
  return best;
}

/** The version for this request, over the split's versions that have candidates; undefined when none has. */
function pickVersion(candidates: readonly Candidate[], state: BalanceState, split: readonly VersionShare[]): number | undefined {
  const present = new Set(candidates.map((candidate) => candidate.target.version));
  const shares = split.filter((share) => present.has(share.version));
  if (shares.length === 0) return undefined;
  const chosen = smoothPick(
    shares.map((share) => ({ key: share.version, weight: share.percent })),
    state.versionWeights,
  );
  return chosen;
}

function pickWeighted(candidates: readonly Candidate[], state: BalanceState, split: readonly VersionShare[] | undefined): number {
  const perVersion = new Map<number, number>();
  for (const candidate of candidates) perVersion.set(candidate.target.version, (perVersion.get(candidate.target.version) ?? 0) + 1);
  const present = split?.filter((share) => perVersion.has(share.version));
  const shareOf = new Map(present?.map((share) => [share.version, share.percent]));
  const items = candidates.map((candidate, index) => {
    const share = present === undefined || present.length === 0 ? 1 : (shareOf.get(candidate.target.version) ?? 0) / perVersion.get(candidate.target.version)!;
    return { key: index, weight: share, id: candidate.target.instance };
  });
  if (state.backendWeights.size > STALE_WEIGHTS_FACTOR * candidates.length) {
    const live = new Set(items.map((item) => item.id));
    for (const id of state.backendWeights.keys()) if (!live.has(id)) state.backendWeights.delete(id);
  }
  return smoothPickBy(items, state.backendWeights);
}

/** nginx's smooth weighted round-robin over `items`, with current weights in `current`. Items of weight 0 are never picked unless all are. */
function smoothPick<K>(items: readonly { key: K; weight: number }[], current: Map<K, number>): K {
  let total = 0;
  let best: { key: K; weight: number } | undefined;
  let bestCurrent = -Infinity;
  for (const item of items) {
    total += item.weight;
    const value = (current.get(item.key) ?? 0) + item.weight;
    current.set(item.key, value);
    if (value > bestCurrent) {
      best = item;
      bestCurrent = value;
    }
  }
  assert(best !== undefined, 'smoothPick: no items');
  current.set(best.key, bestCurrent - total);
  return best.key;
}

function smoothPickBy(items: readonly { key: number; weight: number; id: string }[], current: Map<string, number>): number {
  const byId = items.map((item) => ({ key: item.id, weight: item.weight }));
  const chosen = smoothPick(byId, current);
  return items.find((item) => item.id === chosen)!.key;
}

/** FNV-1a over UTF-16 code units with a murmur3 finalizer: a well-mixed 32-bit hash, stable across runs. */
export function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

