/**
 * The DNS wire format where speed matters (RFC 1035, 6891): reading a
 * query's header, question and EDNS OPT record, and making replies by
 * patching bytes: a cached reply gets the query's id, its RD bit and its
 * question as sent (the querier's letter case, which resolvers using 0x20
 * randomisation check). dns2's `Packet` (bit-level reader and writer) builds
 * the zone's replies once per change (`encode.ts`); decoding every query with
 * it would cost more than the lookup itself. Pure: Buffers in, Buffers out.
 */

/** The header's length. */
export const HEADER_BYTES = 12;
/** The largest reply over UDP without EDNS (RFC 1035). */
export const UDP_PAYLOAD_BYTES_CLASSIC = 512;
/**
 * The largest reply over UDP with EDNS, whatever larger size the querier
 * offers: 1232 bytes fit every path's MTU without fragmenting (DNS flag day
 * 2020); a larger reply is truncated and the querier retries over TCP.
 */
export const UDP_PAYLOAD_BYTES_MAX = 1232;
/** A name's length on the wire at most (RFC 1035 2.3.4). */
const NAME_BYTES_MAX = 255;
const LABEL_BYTES_MAX = 63;
/** OPT's type (RFC 6891). */
export const TYPE_OPT = 41;
const TYPE_A = 1;
const TYPE_AAAA = 28;
/** The class of the Internet. */
export const CLASS_IN = 1;

/** Response codes (RFC 1035 4.1.1). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** What a query asks, read from its bytes. */
export interface Query {
  id: number;
  /** Recursion desired: copied into the reply. */
  recursionDesired: boolean;
  /** The question's name, lowercase ASCII, labels joined by dots, no trailing dot; '' for the root. */
  name: string;
  type: number;
  class: number;
  /** Where the question ends (after its class): header and question are bytes [0, questionEnd). */
  questionEnd: number;
  /** The querier's EDNS OPT record, when it sent one. */
  edns?: { payloadBytes: number; dnssecOk: boolean };
}

/** A query, or why it cannot be answered: `drop` (not a query at all: send nothing), or an rcode for an error reply. */
export type ParsedQuery = { ok: true; query: Query } | { ok: false; drop: true } | { ok: false; drop: false; rcode: number; id: number; questionEnd: number };

/** Reads a query. Never throws: malformed bytes give FORMERR (or a drop when not even the header is there). */
export function parseQuery(bytes: Uint8Array): ParsedQuery {
  if (bytes.length < HEADER_BYTES) return { ok: false, drop: true };
  const id = readU16(bytes, 0);
  const flags = readU16(bytes, 2);
  if ((flags & 0x8000) !== 0) return { ok: false, drop: true };
  const opcode = (flags >> 11) & 0xf;
  const questions = readU16(bytes, 4);
  if (opcode !== 0) return { ok: false, drop: false, rcode: RCODE.NOTIMP, id, questionEnd: HEADER_BYTES };
  if (questions !== 1) return { ok: false, drop: false, rcode: RCODE.FORMERR, id, questionEnd: HEADER_BYTES };
  const name = readQuestionName(bytes, HEADER_BYTES);
  if (name === undefined || name.end + 4 > bytes.length) return { ok: false, drop: false, rcode: RCODE.FORMERR, id, questionEnd: HEADER_BYTES };
  const questionEnd = name.end + 4;
  const query: Query = { id, recursionDesired: (flags & 0x0100) !== 0, name: name.text, type: readU16(bytes, name.end), class: readU16(bytes, name.end + 2), questionEnd };
  const otherRecords = readU16(bytes, 6) + readU16(bytes, 8);
  let additionals = readU16(bytes, 10);
  let offset = questionEnd;
  for (let index = 0; index < otherRecords + additionals && offset < bytes.length; index++) {
    const record = readRecordHead(bytes, offset);
    if (record === undefined) return { ok: false, drop: false, rcode: RCODE.FORMERR, id, questionEnd };
    if (index >= otherRecords && record.type === TYPE_OPT) {
      query.edns = { payloadBytes: record.class, dnssecOk: (record.ttl & 0x8000) !== 0 };
      additionals = 0;
      break;
    }
    offset = record.end;
  }
  return { ok: true, query };
}

/** The UDP reply size limit for a query: 512 without EDNS, else what it offers within [512, UDP_PAYLOAD_BYTES_MAX]. */
export function udpLimitBytes(query: Query): number {
  if (query.edns === undefined) return UDP_PAYLOAD_BYTES_CLASSIC;
  return Math.min(UDP_PAYLOAD_BYTES_MAX, Math.max(UDP_PAYLOAD_BYTES_CLASSIC, query.edns.payloadBytes));
}

/**
 * A reply for `query` made from `template` (a reply to the same question,
 * any id and letter case): a copy with the query's id, RD bit and question
 * bytes. The template is not changed.
 */
export function patchReply(template: Uint8Array, queryBytes: Uint8Array, query: Query): Buffer {
  const reply = Buffer.allocUnsafe(template.length);
  reply.set(template);
  writeU16(reply, 0, query.id);
  reply[2] = (reply[2]! & ~0x01) | (query.recursionDesired ? 0x01 : 0);
  reply.set(queryBytes.subarray(HEADER_BYTES, query.questionEnd), HEADER_BYTES);
  return reply;
}

/**
 * The truncated form of `reply` (RFC 2181 9): header with TC set, the
 * question, no records but the OPT one when the query had EDNS. The querier
 * asks again over TCP.
 */
export function truncateReply(reply: Uint8Array, query: Query): Buffer {
  const opt = query.edns === undefined ? undefined : optRecord(0);
  const out = Buffer.alloc(query.questionEnd + (opt?.length ?? 0));
  out.set(reply.subarray(0, query.questionEnd));
  out[2] = out[2]! | 0x02;
  writeU16(out, 6, 0);
  writeU16(out, 8, 0);
  writeU16(out, 10, opt === undefined ? 0 : 1);
  if (opt !== undefined) out.set(opt, query.questionEnd);
  return out;
}

/**
 * An error reply (FORMERR, SERVFAIL, NOTIMP, REFUSED) to the bytes of a
 * query: its header and question (when readable), with an OPT record when
 * the query had EDNS.
 */
export function errorReply(queryBytes: Uint8Array, failure: { id: number; questionEnd: number; rcode: number; edns?: boolean }): Buffer {
  const questionEnd = failure.questionEnd;
  const opt = failure.edns === true ? optRecord(0) : undefined;
  const out = Buffer.alloc(Math.max(HEADER_BYTES, questionEnd) + (opt?.length ?? 0));
  out.set(queryBytes.subarray(0, Math.min(questionEnd, queryBytes.length)));
  writeU16(out, 0, failure.id);
  // QR, the query's opcode and RD; RA; the rcode.
  out[2] = 0x80 | ((queryBytes[2] ?? 0) & 0x79);
  out[3] = 0x80 | (failure.rcode & 0x0f);
  writeU16(out, 4, questionEnd > HEADER_BYTES ? 1 : 0);
  writeU16(out, 6, 0);
  writeU16(out, 8, 0);
  writeU16(out, 10, opt === undefined ? 0 : 1);
  if (opt !== undefined) out.set(opt, questionEnd);
  return out;
}

/** An OPT record offering UDP_PAYLOAD_BYTES_MAX, with the DO bit when asked. */
export function optRecord(flags: number): Buffer {
  const out = Buffer.alloc(11);
  out[0] = 0;
  writeU16(out, 1, TYPE_OPT);
  writeU16(out, 3, UDP_PAYLOAD_BYTES_MAX);
  out.writeUInt32BE(flags >>> 0, 5);
  writeU16(out, 9, 0);
  return out;
}

/** The records of a reply (answer, authority, additional), for a cache: where each TTL is (OPT's excepted) and the rcode. */
export interface ReplyLayout {
  rcode: number;
  truncated: boolean;
  /** Byte offsets of the TTL fields of the records that have one (OPT excluded). */
  ttlOffsets: number[];
  /** The smallest of those TTLs; undefined when there are none. */
  ttlSecondsMin?: number;
  /** The SOA minimum field in the authority section (for negative caching), if there is a SOA. */
  soaMinimumSeconds?: number;
}

/** Reads a reply's layout, or undefined when it does not parse. */
export function replyLayout(bytes: Uint8Array): ReplyLayout | undefined {
  if (bytes.length < HEADER_BYTES) return undefined;
  const flags = readU16(bytes, 2);
  const records = recordCount(bytes);
  let offset = afterQuestions(bytes);
  if (offset === undefined) return undefined;
  const layout: ReplyLayout = { rcode: flags & 0x0f, truncated: (flags & 0x0200) !== 0, ttlOffsets: [] };
  for (let index = 0; index < records; index++) {
    const record = readRecordHead(bytes, offset);
    if (record === undefined) return undefined;
    if (record.type !== TYPE_OPT) {
      layout.ttlOffsets.push(record.ttlOffset);
      layout.ttlSecondsMin = Math.min(layout.ttlSecondsMin ?? Number.POSITIVE_INFINITY, record.ttl);
      // SOA rdata: two names, then serial, refresh, retry, expire, minimum.
      if (record.type === 6) {
        const afterPrimary = skipName(bytes, record.dataOffset);
        const afterAdmin = afterPrimary === undefined ? undefined : skipName(bytes, afterPrimary);
        if (afterAdmin !== undefined && afterAdmin + 20 <= record.end) layout.soaMinimumSeconds = Math.min(record.ttl, bytes[afterAdmin + 16]! * 2 ** 24 + readU16(bytes, afterAdmin + 17) * 256 + bytes[afterAdmin + 19]!);
      }
    }
    offset = record.end;
  }
  return offset <= bytes.length ? layout : undefined;
}

/** Writes `ttlSeconds` into every TTL field at `offsets`. */
export function writeTtls(bytes: Buffer, offsets: readonly number[], ttlSeconds: number): void {
  for (const offset of offsets) bytes.writeUInt32BE(ttlSeconds >>> 0, offset);
}

/** A query for `name`/`type`, as the forwarder sends it upstream: RD set, an OPT record offering UDP_PAYLOAD_BYTES_MAX. */
export function encodeQuery(id: number, name: string, type: number, qclass: number, dnssecOk: boolean): Buffer {
  const labels = name === '' ? [] : name.split('.');
  const nameBytes = labels.reduce((total, label) => total + 1 + Buffer.byteLength(label, 'latin1'), 1);
  const opt = optRecord(dnssecOk ? 0x8000 : 0);
  const out = Buffer.alloc(HEADER_BYTES + nameBytes + 4 + opt.length);
  writeU16(out, 0, id);
  writeU16(out, 2, 0x0100);
  writeU16(out, 4, 1);
  writeU16(out, 10, 1);
  let offset = HEADER_BYTES;
  for (const label of labels) {
    out[offset++] = label.length;
    offset += out.write(label, offset, 'latin1');
  }
  out[offset++] = 0;
  writeU16(out, offset, type);
  writeU16(out, offset + 2, qclass);
  out.set(opt, offset + 4);
  return out;
}

// ---------------------------------------------------------------------------

function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function writeU16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = (value >> 8) & 0xff;
  bytes[offset + 1] = value & 0xff;
}

/** A question name (no compression pointers: a query has nothing to point at), lowercased. */
function readQuestionName(bytes: Uint8Array, start: number): { text: string; end: number } | undefined {
  let offset = start;
  let text = '';
  for (;;) {
    if (offset >= bytes.length) return undefined;
    const length = bytes[offset]!;
    if (length === 0) return offset + 1 - start > NAME_BYTES_MAX ? undefined : { text, end: offset + 1 };
    if (length > LABEL_BYTES_MAX || offset + 1 + length > bytes.length) return undefined;
    if (text !== '') text += '.';
    for (let index = offset + 1; index <= offset + length; index++) {
      const code = bytes[index]!;
      // A dot inside a label would make two labels of the text: refuse it rather than answer for another name.
      if (code === 0x2e) return undefined;
      text += String.fromCharCode(code >= 0x41 && code <= 0x5a ? code + 0x20 : code);
    }
    offset += 1 + length;
  }
}

/** Where a (possibly compressed) name that starts at `offset` ends. */
function skipName(bytes: Uint8Array, offset: number): number | undefined {
  for (let steps = 0; steps < 128; steps++) {
    if (offset >= bytes.length) return undefined;
    const length = bytes[offset]!;
    if (length === 0) return offset + 1;
    if ((length & 0xc0) === 0xc0) return offset + 2 <= bytes.length ? offset + 2 : undefined;
    if (length > LABEL_BYTES_MAX) return undefined;
    offset += 1 + length;
  }
  return undefined;
}

/** A resource record's fixed fields. */
function readRecordHead(bytes: Uint8Array, offset: number): { type: number; class: number; ttl: number; ttlOffset: number; dataOffset: number; end: number } | undefined {
  const nameEnd = skipName(bytes, offset);
  if (nameEnd === undefined || nameEnd + 10 > bytes.length) return undefined;
  const dataLength = readU16(bytes, nameEnd + 8);
  const end = nameEnd + 10 + dataLength;
  if (end > bytes.length) return undefined;
  const ttl = bytes[nameEnd + 4]! * 2 ** 24 + readU16(bytes, nameEnd + 5) * 256 + bytes[nameEnd + 7]!;
  return { type: readU16(bytes, nameEnd), class: readU16(bytes, nameEnd + 2), ttl, ttlOffset: nameEnd + 4, dataOffset: nameEnd + 10, end };
}

/**
 * Rotates the answer section of `reply` in place by `shift` records, so
 * successive replies start with successive addresses (round robin, as
 * BIND's cyclic rrset-order). Only when there are two answers or more and
 * every one is an A or AAAA record whose name is a compression pointer:
 * then nothing in the message points into them, and moving them keeps it
 * valid. `questionEnd`: where the answers start. Returns whether it rotated.
 */
export function rotateAddressAnswers(reply: Buffer, questionEnd: number, shift: number): boolean {
  const count = readU16(reply, 6);
  if (count < 2 || shift % count === 0) return false;
  const starts: number[] = [];
  let offset = questionEnd;
  for (let index = 0; index < count; index++) {
    if (offset >= reply.length || (reply[offset]! & 0xc0) !== 0xc0) return false;
    const record = readRecordHead(reply, offset);
    if (record === undefined || (record.type !== TYPE_A && record.type !== TYPE_AAAA)) return false;
    starts.push(offset);
    offset = record.end;
  }
  const split = starts[shift % count]!;
  const rotated = Buffer.concat([reply.subarray(split, offset), reply.subarray(questionEnd, split)]);
  reply.set(rotated, questionEnd);
  return true;
}

/** `reply` without its OPT record, when that is the last record (where servers put it); else `reply` itself. For a querier that sent no EDNS. */
export function withoutOpt(reply: Buffer): Buffer {
  const layoutEnd = lastRecord(reply);
  if (layoutEnd === undefined || layoutEnd.type !== TYPE_OPT) return reply;
  const out = Buffer.from(reply.subarray(0, layoutEnd.start));
  writeU16(out, 10, readU16(out, 10) - 1);
  return out;
}

/** Answer, authority and additional records together. */
function recordCount(bytes: Uint8Array): number {
  return readU16(bytes, 6) + readU16(bytes, 8) + readU16(bytes, 10);
}

/** The offset just past the question section, or undefined when a name does not parse. */
function afterQuestions(bytes: Uint8Array): number | undefined {
  let offset = HEADER_BYTES;
  for (let index = readU16(bytes, 4); index > 0; index--) {
    const end = skipName(bytes, offset);
    if (end === undefined) return undefined;
    offset = end + 4;
  }
  return offset;
}

function lastRecord(bytes: Uint8Array): { start: number; type: number } | undefined {
  if (bytes.length < HEADER_BYTES) return undefined;
  const records = recordCount(bytes);
  let offset = afterQuestions(bytes);
  if (offset === undefined) return undefined;
  let last: { start: number; type: number } | undefined;
  for (let index = 0; index < records; index++) {
    const record = readRecordHead(bytes, offset);
    if (record === undefined) return undefined;
    last = { start: offset, type: record.type };
    offset = record.end;
  }
  return last;
}
