import { EntryType, type Entry, type NodeId } from '../core/types.js';
import type { RaftLog } from '../core/log.js';

const decoder = new TextDecoder();
const keys = new WeakMap<Entry, string>();

/** A string that identifies an entry's content (not its position). */
export function entryKey(entry: Entry): string {
  let key = keys.get(entry);
  if (key === undefined) {
    key =
      entry.type === EntryType.Config
        ? `config voters=${entry.config!.voters.join(',')} learners=${entry.config!.learners.join(',')}`
        : `data ${decoder.decode(entry.data)}`;
    keys.set(entry, key);
  }
  return key;
}

/**
 * The safety properties of Raft, checked as the simulation runs. Each method
 * is fed one kind of event and records a violation (a sentence) when a
 * property breaks. The checker trusts nothing the nodes say about each other.
 */
export class SafetyChecker {
  readonly violations: string[] = [];
  /** The leader of each term that had one. */
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** What was applied at each index (by anyone): never two different things. */
  readonly committed = new Map<number, { term: number; key: string }>();
  committedMax = 0;
  /** The content of the entry at (index, term), wherever it is seen. */
  private readonly entryAt = new Map<string, string>();
  /** Acknowledged proposals: their index and content. */
  readonly acknowledged: { index: number; key: string }[] = [];
  acknowledgedIndexMax = 0;

  /** A violation seen by the world itself (it knows each node's disk; the checker does not). */
  recordViolation(sentence: string): void {
    this.violation(sentence);
  }

  private violation(sentence: string): void {
    if (this.violations.length < 20) this.violations.push(sentence);
  }

  /** A node became leader of `term`. */
  leaderElected(id: NodeId, term: number, log: RaftLog): void {
    const existing = this.leaderOfTerm.get(term);
    if (existing !== undefined && existing !== id) {
      this.violation(`two leaders in term ${term}: ${existing} and ${id}`);
    }
    this.leaderOfTerm.set(term, id);
    // Leader completeness: every committed entry is in the new leader's log.
    for (let index = log.snapshotMeta.index + 1; index <= this.committedMax; index++) {
      const want = this.committed.get(index);
      if (want === undefined) continue;
      if (index > log.lastIndex()) {
        this.violation(`leader ${id} of term ${term} lacks committed entry ${index} (its log ends at ${log.lastIndex()})`);
        return;
      }
      const entry = log.entry(index);
      if (entry.term !== want.term || entryKey(entry) !== want.key) {
        this.violation(`leader ${id} of term ${term} has a different entry at committed index ${index}`);
        return;
      }
    }
  }

  /** A node appended (or received) entries. */
  entriesSeen(id: NodeId, entries: Entry[]): void {
    for (const entry of entries) {
      const position = `${entry.index}:${entry.term}`;
      const key = entryKey(entry);
      const known = this.entryAt.get(position);
      if (known === undefined) this.entryAt.set(position, key);
      else if (known !== key) {
        this.violation(`${id} holds a different entry at index ${entry.index} term ${entry.term}: ${key} vs ${known}`);
      }
    }
  }

  /** A node applied `entry`. */
  applied(id: NodeId, entry: Entry): void {
    const key = entryKey(entry);
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { term: entry.term, key });
      if (entry.index > this.committedMax) this.committedMax = entry.index;
    } else if (known.term !== entry.term || known.key !== key) {
      this.violation(`${id} applied ${key} at index ${entry.index}, another node applied ${known.key}`);
    }
  }

  /** A client heard "ok" for the proposal at `index`. */
  acknowledge(index: number, key: string): void {
    this.acknowledged.push({ index, key });
    if (index > this.acknowledgedIndexMax) this.acknowledgedIndexMax = index;
  }

  /** A ReadIndex read completed at `index`; writes acknowledged before it started reached `requiredIndex`. */
  readServed(id: NodeId, context: string, index: number, requiredIndex: number): void {
    if (index < requiredIndex) {
      this.violation(`${id} served read ${context} at index ${index}, but a write acknowledged before it is at ${requiredIndex}`);
    }
  }

  /** Every acknowledged write is committed where it was acknowledged. */
  checkAcknowledged(): void {
    for (const ack of this.acknowledged) {
      const known = this.committed.get(ack.index);
      if (known === undefined || known.key !== ack.key) {
        this.violation(`acknowledged write ${ack.key} at index ${ack.index} is not what was committed there`);
      }
    }
  }

  /** Log matching between two logs: if they agree at an index, they agree on everything before it. */
  logMatching(a: { id: NodeId; log: RaftLog }, b: { id: NodeId; log: RaftLog }): void {
    const low = Math.max(a.log.snapshotMeta.index, b.log.snapshotMeta.index) + 1;
    let index = Math.min(a.log.lastIndex(), b.log.lastIndex());
    while (index >= low && a.log.term(index) !== b.log.term(index)) index--;
    for (; index >= low; index--) {
      const x = a.log.entry(index);
      const y = b.log.entry(index);
      if (x.term !== y.term || entryKey(x) !== entryKey(y)) {
        this.violation(`logs of ${a.id} and ${b.id} match later but differ at index ${index}`);
        return;
      }
    }
  }
}
