/**
 * The node's DNS server: UDP and TCP on the DNS port. Names in the
 * `hivemind` zone are answered from the discovery directory (`zone.ts`),
 * every other name is forwarded upstream (`forwarder.ts`) through a cache
 * (`reply-cache.ts`).
 *
 * Speed. The zone's replies are encoded once per change of the directory
 * and question (with dns2's `Packet`) and kept; a query is read and its
 * reply patched by hand (`wire.ts`), so a query for a known name costs a
 * header read, a map lookup and a copy. dns2's own servers decode every
 * query bit by bit and answer through a handler; that is several times
 * slower than the lookup, so this server uses node:dgram and node:net
 * itself and dns2 only to encode.
 *
 * The directory is rebuilt lazily: a change of the state marks it stale
 * (`invalidate`, called from the state listener on the Raft loop: cheap),
 * and the next query rebuilds it from the replica, so an answer is never
 * older than the last apply.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { appKey, directoryOf, type DiscoveryInput, type Directory } from '../discovery/endpoints.js';
import { encodeZoneReply } from './encode.js';
import { appNamesOf, type AppNames } from './names.js';
import { Forwarder, type Upstream } from './forwarder.js';
import { ReplyCache } from './reply-cache.js';
import { CLASS_IN, RCODE, errorReply, parseQuery, patchReply, rotateAddressAnswers, truncateReply, udpLimitBytes, withoutOpt, type Query } from './wire.js';
import { answerQuestion, inZone } from './zone.js';

/** Zone replies kept at once (questions asked since the last change); past it the kept ones are dropped. */
export const ZONE_REPLIES_MAX = 20_000;
/** TCP connections at once; more are closed at once. */
export const TCP_CONNECTIONS_MAX = 256;
/** A TCP connection with no query for this long is closed (RFC 7766 suggests seconds). */
export const TCP_IDLE_MS = 10_000;

/** Counts for metrics; plain numbers, read by the metrics' collect. */
export interface DnsCounts {
  zone: number;
  cached: number;
  forwarded: number;
  failed: number;
  refused: number;
  truncated: number;
}

export interface DnsServerOptions {
  /** The address to listen on (`0.0.0.0`, `::`, or one address). */
  host: string;
  port: number;
  upstreams: readonly Upstream[];
  /** Reads the replica's live records (between applies only). */
  read: () => DiscoveryInput;
  log: (line: string) => void;
  /** The clock of the forwarder's cache (ms). */
  nowMs?: () => number;
}

export class DnsServer {
  /** UDP socket and TCP server by the host they are bound to. */
  private readonly listeners = new Map<string, { udp: Socket; tcp: Server }>();
  private readonly connections = new Set<TcpSocket>();
  private readonly forwarder: Forwarder;
  private readonly cache = new ReplyCache();
  /** Encoded zone replies, by querier and question (see `zoneReply`). */
  private readonly zoneReplies = new Map<string, Buffer>();
  /**
   * The rotation the next reply to each kept question gets. Kept across
   * changes of the state (applies are frequent; starting every question
   * over at its first address on each would favour that address), dropped
   * whole past ZONE_REPLIES_MAX questions.
   */
  private readonly rotations = new Map<string, number>();
  private directory: { directory: Directory; names: AppNames } | undefined;
  private readonly nowMs: () => number;
  readonly counts: DnsCounts = { zone: 0, cached: 0, forwarded: 0, failed: 0, refused: 0, truncated: 0 };

  constructor(private readonly options: DnsServerOptions) {
    this.forwarder = new Forwarder(options.upstreams);
    this.nowMs = options.nowMs ?? Date.now;
  }

  /**
   * Binds UDP and TCP on the same port at `where` (default: the options'
   * host and port; when the port is 0, TCP takes the one UDP got), beside
   * any address already bound. Returns the port. Rejects (and binds
   * nothing) when either cannot be bound, or when `where.host` is bound
   * already.
   */
  async listen(where: { host: string; port: number } = { host: this.options.host, port: this.options.port }): Promise<number> {
    if (this.listeners.has(where.host)) throw new Error(`the DNS server listens on ${where.host} already`);
    const udp = createSocket({ type: where.host.includes(':') ? 'udp6' : 'udp4' });
    udp.on('message', (bytes, source) => this.handleUdp(udp, bytes, source.address, source.port));
    udp.on('error', (error) => this.options.log(`UDP socket on ${where.host}: ${error.message}`));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(where.port, where.host, () => {
        udp.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      udp.close();
      throw error;
    });
    const port = udp.address().port;
    const tcp = createServer((socket) => this.handleTcp(socket));
    tcp.maxConnections = TCP_CONNECTIONS_MAX;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, where.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      udp.close();
      throw error;
    });
    tcp.on('error', (error) => this.options.log(`TCP server on ${where.host}: ${error.message}`));
    this.listeners.set(where.host, { udp, tcp });
    return port;
  }

  /** Stops listening on `host` (a no-op when not listening there); its open TCP connections are left to finish or idle out. */
  async unlisten(host: string): Promise<void> {
    const listener = this.listeners.get(host);
    if (listener === undefined) return;
    this.listeners.delete(host);
    await closeListener(listener);
  }

  /** The state changed: the directory and the zone's kept replies are stale. Cheap; call on every apply. */
  invalidate(): void {
    this.directory = undefined;
    this.zoneReplies.clear();
  }

  async close(): Promise<void> {
    this.forwarder.close();
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
    const listeners = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(listeners.map(closeListener));
  }

  /**
   * The reply to one query from `source`, or undefined to send nothing.
   * Synchronous for zone names and cache hits; a forwarded question's
   * reply comes as a promise. `limitBytes`: the transport's size limit
   * (UDP: the query's; TCP: 65535).
   */
  reply(bytes: Buffer, source: string, transport: 'udp' | 'tcp'): Buffer | Promise<Buffer> | undefined {
    const parsed = parseQuery(bytes);
    if (!parsed.ok) {
      if (parsed.drop) return undefined;
      this.counts.failed++;
      return errorReply(bytes, parsed);
    }
    const query = parsed.query;
    if (inZone(query.name)) {
      if (query.class !== CLASS_IN) {
        this.counts.refused++;
        return errorReply(bytes, { id: query.id, questionEnd: query.questionEnd, rcode: RCODE.REFUSED, edns: query.edns !== undefined });
      }
      this.counts.zone++;
      const kept = this.zoneReply(query, source);
      const reply = patchReply(kept.bytes, bytes, query);
      const rotation = this.rotations.get(kept.key) ?? 0;
      if (rotation === 0 && this.rotations.size >= ZONE_REPLIES_MAX) this.rotations.clear();
      this.rotations.set(kept.key, rotation + 1);
      rotateAddressAnswers(reply, query.questionEnd, rotation);
      return this.fit(reply, query, transport);
    }
    const key = `${query.name}|${query.type}|${query.class}|${query.edns?.dnssecOk ? 1 : 0}`;
    const cached = this.cache.get(key, this.nowMs());
    if (cached !== undefined) {
      this.counts.cached++;
      return this.fit(this.forClient(patchReply(cached, bytes, query), query), query, transport);
    }
    this.counts.forwarded++;
    return this.forwarder.forward({ name: query.name, type: query.type, class: query.class, dnssecOk: query.edns?.dnssecOk ?? false }).then((reply) => {
      if (reply === undefined) {
        this.counts.failed++;
        return errorReply(bytes, { id: query.id, questionEnd: query.questionEnd, rcode: RCODE.SERVFAIL, edns: query.edns !== undefined });
      }
      this.cache.put(key, reply, this.nowMs());
      return this.fit(this.forClient(patchReply(reply, bytes, query), query), query, transport);
    });
  }

  /**
   * The kept zone reply to the question, as seen from `source`; encoded on
   * first use after a change. Kept per querier tenant, and per querier app
   * for apps with links (their names differ).
   */
  private zoneReply(query: Query, source: string): { bytes: Buffer; key: string } {
    const { directory, names } = (this.directory ??= this.build());
    const address = source.startsWith('::ffff:') ? source.slice(7) : source;
    const tenant = directory.tenantOfAddress.get(address);
    const app = tenant === undefined ? undefined : names.appOfAddress.get(address);
    const linking = app !== undefined && names.links.has(appKey(tenant!, app));
    // A querier on tenant networks sees the apps on its networks alone (zone.ts): its networks are part of the key.
    const networks = tenant === undefined ? undefined : directory.networksOfAddress.get(address);
    const key = `${tenant ?? ''}|${linking ? app : ''}|${networks?.join(',') ?? ''}|${query.name}|${query.type}|${query.edns === undefined ? 0 : 1}`;
    let bytes = this.zoneReplies.get(key);
    if (bytes === undefined) {
      if (this.zoneReplies.size >= ZONE_REPLIES_MAX) this.zoneReplies.clear();
      bytes = encodeZoneReply(query, answerQuestion(directory, query, tenant, { names, ...(linking ? { querierApp: app } : {}), ...(networks !== undefined ? { querierNetworks: networks } : {}) }));
      this.zoneReplies.set(key, bytes);
    }
    return { bytes, key };
  }

  private build(): { directory: Directory; names: AppNames } {
    const input = this.options.read();
    const directory = directoryOf(input);
    return { directory, names: appNamesOf(input, directory) };
  }

  /** An upstream reply for a querier that sent no EDNS loses its OPT record. */
  private forClient(reply: Buffer, query: Query): Buffer {
    return query.edns === undefined ? withoutOpt(reply) : reply;
  }

  private fit(reply: Buffer, query: Query, transport: 'udp' | 'tcp'): Buffer {
    if (transport === 'tcp' || reply.length <= udpLimitBytes(query)) return reply;
    this.counts.truncated++;
    return truncateReply(reply, query);
  }

  private isOpen(socket: Socket): boolean {
    for (const listener of this.listeners.values()) if (listener.udp === socket) return true;
    return false;
  }

  private handleUdp(socket: Socket, bytes: Buffer, address: string, port: number): void {
    const reply = this.reply(bytes, address, 'udp');
    if (reply === undefined) return;
    if (!(reply instanceof Promise)) socket.send(reply, port, address);
    else void reply.then((out) => this.isOpen(socket) && socket.send(out, port, address));
  }

  /** RFC 7766 framing: a two-byte length before every message; queries may be pipelined, replies go back in any order. */
  private handleTcp(socket: TcpSocket): void {
    this.connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        const reply = this.reply(Buffer.from(message), socket.remoteAddress ?? '', 'tcp');
        if (reply === undefined) continue;
        if (!(reply instanceof Promise)) writeFrame(socket, reply);
        else void reply.then((out) => writeFrame(socket, out));
      }
    });
  }
}

async function closeListener(listener: { udp: Socket; tcp: Server }): Promise<void> {
  await Promise.all([new Promise<void>((resolve) => listener.udp.close(() => resolve())), new Promise<void>((resolve) => listener.tcp.close(() => resolve()))]);
}

function writeFrame(socket: TcpSocket, message: Buffer): void {
  if (socket.destroyed) return;
  const frame = Buffer.allocUnsafe(2 + message.length);
  frame.writeUInt16BE(message.length, 0);
  frame.set(message, 2);
  socket.write(frame);
}
