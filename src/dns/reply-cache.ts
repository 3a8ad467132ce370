/**
 * The forwarder's cache of upstream replies, keyed by question (name, type,
 * class, DO bit). An entry lives for the smallest TTL of its records (a
 * negative reply: its SOA's minimum), capped at CACHE_TTL_SECONDS_MAX; a
 * reply served from it carries the remaining lifetime as every record's TTL.
 * SERVFAIL, truncated and unparsable replies are not kept. Bounded: past
 * CACHE_ENTRIES_MAX the oldest entry goes. Pure: the clock comes in as `nowMs`.
 */
import { RCODE, replyLayout, writeTtls } from './wire.js';

/** Entries at most. */
export const CACHE_ENTRIES_MAX = 50_000;
/** The longest an upstream reply is kept, whatever its TTL says. */
export const CACHE_TTL_SECONDS_MAX = 3600;
/** The longest a negative reply without a SOA is kept. */
export const NEGATIVE_TTL_SECONDS_DEFAULT = 30;

interface Entry {
  bytes: Buffer;
  ttlOffsets: number[];
  expiresAtMs: number;
}

export class ReplyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly entriesMax: number = CACHE_ENTRIES_MAX) {}

  get size(): number {
    return this.entries.size;
  }

  /** A copy of the cached reply with its TTLs counted down, or undefined (absent or expired). */
  get(key: string, nowMs: number): Buffer | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const remainingSeconds = Math.floor((entry.expiresAtMs - nowMs) / 1000);
    if (remainingSeconds <= 0) {
      this.entries.delete(key);
      return undefined;
    }
    const copy = Buffer.from(entry.bytes);
    writeTtls(copy, entry.ttlOffsets, remainingSeconds);
    return copy;
  }

  /** Keeps `reply` under `key` if it may be cached; says whether it was. */
  put(key: string, reply: Buffer, nowMs: number): boolean {
    const layout = replyLayout(reply);
    if (layout === undefined || layout.truncated) return false;
    if (layout.rcode !== RCODE.NOERROR && layout.rcode !== RCODE.NXDOMAIN) return false;
    const negative = layout.rcode === RCODE.NXDOMAIN || layout.ttlOffsets.length === 0 || layout.soaMinimumSeconds !== undefined;
    const ttlSeconds = Math.min(CACHE_TTL_SECONDS_MAX, negative ? (layout.soaMinimumSeconds ?? NEGATIVE_TTL_SECONDS_DEFAULT) : (layout.ttlSecondsMin ?? 0));
    if (ttlSeconds <= 0) return false;
    this.entries.delete(key);
    while (this.entries.size >= this.entriesMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { bytes: Buffer.from(reply), ttlOffsets: layout.ttlOffsets, expiresAtMs: nowMs + ttlSeconds * 1000 });
    return true;
  }

  clear(): void {
    this.entries.clear();
  }
}
