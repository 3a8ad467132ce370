/**
 * The SWIM wire vocabulary as plain objects. A later step encodes them; here
 * they only need a deterministic size estimate so that piggybacked gossip can
 * be packed within a packet's byte budget.
 */

/** Free-form node metadata (addresses, resources, labels), gossiped with `alive`. */
export type MemberMeta = Readonly<Record<string, string>>;

/** A member as the others know it. */
export interface MemberInfo {
  readonly id: string;
  readonly address: string;
  readonly meta: MemberMeta;
}

/** A member is alive, suspected by someone, declared dead, or gone by its own choice. */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/**
 * A gossiped state change about one member. A higher incarnation always wins;
 * at the same incarnation dead/left beats suspect, which beats alive. Only
 * the member itself raises its incarnation (to refute a suspicion).
 */
export type Update =
  | { readonly type: 'alive'; readonly id: string; readonly address: string; readonly meta: MemberMeta; readonly incarnation: number }
  | { readonly type: 'suspect'; readonly id: string; readonly incarnation: number; readonly from: string }
  /** `from === id` means the member left gracefully. */
  | { readonly type: 'dead'; readonly id: string; readonly incarnation: number; readonly from: string };

/** One member's entry in a full-state exchange (`sync`). */
export interface MemberSnapshot extends MemberInfo {
  readonly incarnation: number;
  readonly state: MemberState;
}

/**
 * Every datagram carries `from` (the sender's id) and `piggyback` (gossip).
 * `target` on a ping is the id the sender means to reach, so a ping that lands
 * on a reused address is ignored; join pings leave it out.
 */
export type Message =
  | { readonly type: 'ping'; readonly sequence: number; readonly from: string; readonly target?: string; readonly piggyback: readonly Update[] }
  | {
      readonly type: 'ping-req';
      readonly sequence: number;
      readonly from: string;
      readonly target: string;
      readonly targetAddress: string;
      readonly piggyback: readonly Update[];
    }
  | { readonly type: 'ack'; readonly sequence: number; readonly from: string; readonly piggyback: readonly Update[] }
  | { readonly type: 'nack'; readonly sequence: number; readonly from: string; readonly piggyback: readonly Update[] }
  /** Gossip alone, sent directly (to a suspected member, or on leave). */
  | { readonly type: 'gossip'; readonly from: string; readonly piggyback: readonly Update[] }
  /**
   * Full state, for joining. It is meant for a stream transport later, so it
   * is not held to the packet budget. `reply` asks the receiver for its own.
   */
  | { readonly type: 'sync'; readonly from: string; readonly reply: boolean; readonly members: readonly MemberSnapshot[]; readonly piggyback: readonly Update[] };

/**
 * A deterministic upper estimate of a value's encoded size in bytes with
 * MessagePack (wire.ts): strings cost their UTF-8 length plus a prefix,
 * numbers a fixed 5, and each field its key's length plus one.
 */
export function estimateBytes(value: unknown): number {
  if (typeof value === 'string') return utf8Length(value) + 3;
  if (typeof value === 'number') return 5;
  if (typeof value === 'boolean' || value === null || value === undefined) return 1;
  if (Array.isArray(value)) {
    let total = 2;
    for (const item of value) total += estimateBytes(item);
    return total;
  }
  if (typeof value === 'object') {
    let total = 2;
    const record = value as Record<string, unknown>;
    // for-in rather than Object.entries: no array per object, and this runs for every datagram.
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      const field = record[key];
      if (field === undefined) continue;
      total += key.length + 1 + estimateBytes(field);
    }
    return total;
  }
  return 8;
}

/** The UTF-8 length of `text` in bytes (lone surrogates count as the 3-byte replacement). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
