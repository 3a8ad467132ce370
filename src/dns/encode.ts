/**
 * The bytes of the zone's replies, made with dns2's `Packet` (names
 * compressed, against the question too). A reply is encoded once per change
 * of the zone and question (`server.ts` caches it) and patched per query
 * (`wire.ts`): its id is 0 and its question is the lowercase name until then.
 */
import dns2 from 'dns2';
import { RCODE, UDP_PAYLOAD_BYTES_MAX, type Query } from './wire.js';
import type { ZoneAnswer, ZoneRecord } from './zone.js';

const { Packet } = dns2;
type Resource = InstanceType<typeof Packet.Resource>;

// dns2's types give EDNS one parameter; its code takes the options (payload size, DO) as a second.
const ednsRecord = Packet.Resource.EDNS as unknown as (rdata: object[], options: { udpPayloadSize: number }) => Resource;

const TYPE_NUMBER = { A: Packet.TYPE.A, AAAA: Packet.TYPE.AAAA, SRV: Packet.TYPE.SRV, SOA: Packet.TYPE.SOA } as const;

/** The reply to `query` carrying `answer`: authoritative, recursion available, an OPT record when the query had EDNS. */
export function encodeZoneReply(query: Query, answer: ZoneAnswer): Buffer {
  const packet = new Packet();
  packet.header = new Packet.Header({ id: 0, qr: 1, opcode: 0, aa: 1, rd: query.recursionDesired ? 1 : 0, ra: 1, rcode: answer.rcode === 'NXDOMAIN' ? RCODE.NXDOMAIN : RCODE.NOERROR });
  packet.questions = [new Packet.Question(query.name, query.type, query.class)];
  packet.answers = answer.answers.map(resourceOf);
  packet.authorities = answer.authorities.map(resourceOf);
  packet.additionals = answer.additionals.map(resourceOf);
  if (query.edns !== undefined) packet.additionals.push(ednsRecord([], { udpPayloadSize: UDP_PAYLOAD_BYTES_MAX }));
  return packet.toBuffer();
}

function resourceOf(record: ZoneRecord): Resource {
  const base = { name: record.name, type: TYPE_NUMBER[record.type], class: Packet.CLASS.IN, ttl: record.ttl };
  switch (record.type) {
    case 'A':
    case 'AAAA':
      return new Packet.Resource({ ...base, address: record.address });
    case 'SRV':
      return new Packet.Resource({ ...base, priority: record.priority, weight: record.weight, port: record.port, target: record.target });
    case 'SOA':
      return new Packet.Resource({ ...base, primary: record.primary, admin: record.admin, serial: record.serial, refresh: record.refresh, retry: record.retry, expiration: record.expiration, minimum: record.minimum });
  }
}
