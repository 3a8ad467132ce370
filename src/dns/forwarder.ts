/**
 * Forwards questions outside the zone to the node's upstream resolvers
 * (from /etc/resolv.conf): over UDP, again over TCP when the reply comes
 * truncated, to the next upstream after UPSTREAM_TIMEOUT_MS. Replies must
 * come from the upstream asked, with the id and question sent (a spoofed or
 * late datagram is ignored). Identical questions in flight share one upstream
 * query; past IN_FLIGHT_MAX questions in flight, a new one fails at once.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, isIP } from 'node:net';
import { encodeQuery, parseQuery, replyLayout } from './wire.js';

/** How long one upstream has to answer before the next is asked. */
export const UPSTREAM_TIMEOUT_MS = 1500;
/** Distinct questions being forwarded at once, at most. */
export const IN_FLIGHT_MAX = 4096;
/** Nameservers read from resolv.conf (glibc reads three). */
export const UPSTREAMS_MAX = 3;

/** An upstream resolver. */
export interface Upstream {
  host: string;
  port: number;
}

/** The question forwarded. */
export interface ForwardQuestion {
  name: string;
  type: number;
  class: number;
  dnssecOk: boolean;
}

/** The upstreams listed in a resolv.conf text (`nameserver` lines, port 53), at most UPSTREAMS_MAX. */
export function upstreamsOf(resolvConf: string): Upstream[] {
  const found: Upstream[] = [];
  for (const raw of resolvConf.split('\n')) {
    const [keyword, address] = raw.trim().split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined) continue;
    const host = address.split('%')[0]!;
    if (isIP(host) !== 0 && found.length < UPSTREAMS_MAX) found.push({ host, port: 53 });
  }
  return found;
}

/** The node's upstreams: /etc/resolv.conf's, else none (every forwarded question then fails). */
export function nodeUpstreams(path = '/etc/resolv.conf'): Upstream[] {
  try {
    return upstreamsOf(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}

interface Pending {
  upstream: Upstream;
  question: ForwardQuestion;
  resolve: (reply: Buffer | undefined) => void;
  timer: NodeJS.Timeout;
}

export class Forwarder {
  private readonly sockets = new Map<4 | 6, Socket>();
  private readonly pending = new Map<number, Pending>();
  private readonly inFlight = new Map<string, Promise<Buffer | undefined>>();
  private closed = false;

  constructor(private readonly upstreams: readonly Upstream[]) {}

  /** The upstream's reply (with an OPT record), or undefined when no upstream answered. Never rejects. */
  forward(question: ForwardQuestion): Promise<Buffer | undefined> {
    const key = `${question.name}|${question.type}|${question.class}|${question.dnssecOk ? 1 : 0}`;
    const existing = this.inFlight.get(key);
    if (existing !== undefined) return existing;
    if (this.closed || this.inFlight.size >= IN_FLIGHT_MAX || this.upstreams.length === 0) return Promise.resolve(undefined);
    const asked = this.askInTurn(question).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, asked);
    return asked;
  }

  close(): void {
    this.closed = true;
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.resolve(undefined);
    }
    this.pending.clear();
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private async askInTurn(question: ForwardQuestion): Promise<Buffer | undefined> {
    for (const upstream of this.upstreams) {
      const reply = await this.askUdp(upstream, question);
      if (reply === undefined) continue;
      if (!replyLayout(reply)?.truncated) return reply;
      const overTcp = await askTcp(upstream, question);
      if (overTcp !== undefined) return overTcp;
    }
    return undefined;
  }

  private askUdp(upstream: Upstream, question: ForwardQuestion): Promise<Buffer | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    let id = randomInt(0x10000);
    for (let tries = 0; this.pending.has(id) && tries < 16; tries++) id = randomInt(0x10000);
    if (this.pending.has(id)) return Promise.resolve(undefined);
    const socket = this.socketFor(isIP(upstream.host) === 6 ? 6 : 4);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, UPSTREAM_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, { upstream, question, resolve, timer });
      socket.send(encodeQuery(id, question.name, question.type, question.class, question.dnssecOk), upstream.port, upstream.host, (error) => {
        if (error === null || error === undefined) return;
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(undefined);
      });
    });
  }

  private socketFor(family: 4 | 6): Socket {
    let socket = this.sockets.get(family);
    if (socket === undefined) {
      socket = createSocket(family === 6 ? 'udp6' : 'udp4');
      socket.on('message', (reply, source) => this.handleReply(reply, source.address, source.port));
      socket.on('error', () => {});
      socket.unref();
      this.sockets.set(family, socket);
    }
    return socket;
  }

  private handleReply(reply: Buffer, address: string, port: number): void {
    if (reply.length < 12) return;
    const id = reply.readUInt16BE(0);
    const pending = this.pending.get(id);
    if (pending === undefined || pending.upstream.port !== port || normalize(pending.upstream.host) !== normalize(address)) return;
    if (!sameQuestion(reply, pending.question)) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    pending.resolve(reply);
  }
}

/** Asks over TCP (a truncated UDP reply); undefined on any failure or after UPSTREAM_TIMEOUT_MS. */
function askTcp(upstream: Upstream, question: ForwardQuestion): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const id = randomInt(0x10000);
    const query = encodeQuery(id, question.name, question.type, question.class, question.dnssecOk);
    const frame = Buffer.alloc(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    frame.set(query, 2);
    const socket = connect({ host: upstream.host, port: upstream.port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (reply: Buffer | undefined): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(reply);
    };
    socket.setTimeout(UPSTREAM_TIMEOUT_MS, () => finish(undefined));
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('connect', () => socket.write(frame));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (all.length < 2) return;
      const length = all.readUInt16BE(0);
      if (all.length < 2 + length) return;
      const reply = all.subarray(2, 2 + length);
      finish(reply.readUInt16BE(0) === id && sameQuestion(reply, question) ? Buffer.from(reply) : undefined);
    });
  });
}

/** Whether a reply is to the question asked (name compared without case). */
function sameQuestion(reply: Buffer, question: ForwardQuestion): boolean {
  // A reply parses as a query would once its QR bit is cleared.
  const copy = Buffer.from(reply.subarray(0, Math.min(reply.length, 12 + 260)));
  copy[2] = copy[2]! & 0x7f;
  copy.writeUInt16BE(0, 6);
  copy.writeUInt16BE(0, 8);
  copy.writeUInt16BE(0, 10);
  const parsed = parseQuery(copy);
  return parsed.ok && parsed.query.name === question.name && parsed.query.type === question.type && parsed.query.class === question.class;
}

function normalize(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
