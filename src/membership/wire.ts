/**
 * Messages on the wire: MessagePack of the plain objects in messages.ts, and
 * a strict parser for what comes back. Everything a peer sends is checked
 * field by field against the shapes and limits below; anything else is
 * `undefined` (the caller drops and counts it). Decoding never throws.
 */
import { Packr } from 'msgpackr';
import type { MemberMeta, MemberSnapshot, MemberState, Message, Update } from './messages.js';

/** Longest member id, address, metadata key and metadata value accepted (characters). */
export const ID_LENGTH_MAX = 128;
export const ADDRESS_LENGTH_MAX = 300;
export const META_KEY_LENGTH_MAX = 64;
export const META_VALUE_LENGTH_MAX = 4096;
/** Most metadata entries per member. */
export const META_ENTRIES_MAX = 32;
/** Most updates piggybacked on one message, and members in one sync. */
export const PIGGYBACK_MAX = 256;
export const SYNC_MEMBERS_MAX = 10_000;

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true });

/** Encodes a message, leaving out absent optional fields. */
export function encodeMessage(message: Message): Buffer {
  return packr.pack(strip(message));
}

/** Parses a message from bytes a peer sent; undefined if it is not a valid one. */
export function decodeMessage(bytes: Uint8Array): Message | undefined {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return undefined;
  }
  try {
    return parseMessage(value);
  } catch {
    return undefined; // a getter or a prototype trick in a crafted object: still just a bad message
  }
}

function strip(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(strip);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) if (field !== undefined) out[key] = strip(field);
    return out;
  }
  return value;
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function isText(value: unknown, lengthMax: number, allowEmpty = false): value is string {
  return typeof value === 'string' && value.length <= lengthMax && (allowEmpty || value.length > 0);
}

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < 2 ** 32;
}

function parseMeta(value: unknown): MemberMeta | undefined {
  if (!isObject(value)) return undefined;
  const entries = Object.entries(value);
  if (entries.length > META_ENTRIES_MAX) return undefined;
  const meta: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, field] of entries) {
    if (!isText(key, META_KEY_LENGTH_MAX) || !isText(field, META_VALUE_LENGTH_MAX, true)) return undefined;
    meta[key] = field;
  }
  return { ...meta };
}

function parseUpdate(value: unknown): Update | undefined {
  if (!isObject(value) || !isText(value.id, ID_LENGTH_MAX) || !isUint32(value.incarnation)) return undefined;
  const { id, incarnation } = value;
  switch (value.type) {
    case 'alive': {
      const meta = parseMeta(value.meta);
      if (!isText(value.address, ADDRESS_LENGTH_MAX) || meta === undefined) return undefined;
      return { type: 'alive', id, address: value.address, meta, incarnation };
    }
    case 'suspect':
    case 'dead':
      if (!isText(value.from, ID_LENGTH_MAX)) return undefined;
      return { type: value.type, id, incarnation, from: value.from };
    default:
      return undefined;
  }
}

function parseList<T>(value: unknown, lengthMax: number, parse: (item: unknown) => T | undefined): T[] | undefined {
  if (!Array.isArray(value) || value.length > lengthMax) return undefined;
  const out: T[] = [];
  for (const item of value) {
    const parsed = parse(item);
    if (parsed === undefined) return undefined;
    out.push(parsed);
  }
  return out;
}

const memberStates: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];

function parseSnapshot(value: unknown): MemberSnapshot | undefined {
  if (!isObject(value) || !isText(value.id, ID_LENGTH_MAX) || !isText(value.address, ADDRESS_LENGTH_MAX) || !isUint32(value.incarnation)) return undefined;
  const meta = parseMeta(value.meta);
  const state = memberStates.find((candidate) => candidate === value.state);
  if (meta === undefined || state === undefined) return undefined;
  return { id: value.id, address: value.address, meta, incarnation: value.incarnation, state };
}

function parseMessage(value: unknown): Message | undefined {
  if (!isObject(value) || !isText(value.from, ID_LENGTH_MAX)) return undefined;
  const piggyback = parseList(value.piggyback, PIGGYBACK_MAX, parseUpdate);
  if (piggyback === undefined) return undefined;
  const { from } = value;
  switch (value.type) {
    case 'ping':
      if (!isUint32(value.sequence)) return undefined;
      if (value.target !== undefined && !isText(value.target, ID_LENGTH_MAX)) return undefined;
      return value.target === undefined
        ? { type: 'ping', sequence: value.sequence, from, piggyback }
        : { type: 'ping', sequence: value.sequence, from, target: value.target, piggyback };
    case 'ping-req':
      if (!isUint32(value.sequence) || !isText(value.target, ID_LENGTH_MAX) || !isText(value.targetAddress, ADDRESS_LENGTH_MAX)) return undefined;
      return { type: 'ping-req', sequence: value.sequence, from, target: value.target, targetAddress: value.targetAddress, piggyback };
    case 'ack':
    case 'nack':
      if (!isUint32(value.sequence)) return undefined;
      return { type: value.type, sequence: value.sequence, from, piggyback };
    case 'gossip':
      return { type: 'gossip', from, piggyback };
    case 'sync': {
      if (typeof value.reply !== 'boolean') return undefined;
      const members = parseList(value.members, SYNC_MEMBERS_MAX, parseSnapshot);
      if (members === undefined) return undefined;
      return { type: 'sync', from, reply: value.reply, members, piggyback };
    }
    default:
      return undefined;
  }
}
