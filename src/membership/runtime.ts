/**
 * The real-world driver of one SWIM member: a UDP socket for datagrams, a
 * TCP listener on the same port number for push-pull (full-state exchange),
 * the monotonic clock, `crypto` randomness, and the sealed envelope of
 * crypto.ts around every message. The protocol itself is the deterministic
 * `Swim` core; this file only moves bytes and time in and out of it.
 *
 * Whatever a peer sends is opened, parsed and checked before the core sees
 * it; a datagram or frame that fails is dropped and reported through
 * `observer.dropped(reason)`, never thrown.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { PeerTls, PeerTlsMaterial } from '../node/peer-tls.js';

/** The TLS server name sent on push-pull streams (identities are checked by node id, not host). */
const TLS_SERVER_NAME = 'hivemind.peer';

function secureContextOf(material: PeerTlsMaterial): SecureContextOptions {
  return { key: material.keyPem, cert: material.certificatePem, ca: material.caPems.join('\n') };
}
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { assert } from '../../consensus/core/assert.js';
import { deriveGossipKey, ENVELOPE_OVERHEAD_BYTES, EnvelopeKind, open, seal } from './crypto.js';
import type { MemberMeta, MemberState, Message } from './messages.js';
import { Swim, type SwimEvent, type SwimOptions, type SwimTotals } from './swim.js';
import { decodeMessage, encodeMessage } from './wire.js';

/** Largest datagram sent or accepted, envelope included. */
export const DATAGRAM_BYTES_MAX = 1400;
/** Largest push-pull frame (envelope included) sent or accepted. */
export const STREAM_FRAME_BYTES_MAX = 8 * 1024 * 1024;
/** A push-pull exchange that takes longer is abandoned. */
export const STREAM_TIMEOUT_MS = 5000;
/** Push-pull exchanges in flight at once, each way; more are refused. */
export const STREAMS_MAX = 16;
/** How long `stop()` keeps the member running after announcing its leave. */
export const LEAVE_PROPAGATION_MS = 600;
/** Bind attempts when port 0 asks for any free port (UDP and TCP must both get it). */
const BIND_ATTEMPTS_MAX = 8;

/** Why a datagram or frame was dropped: the `reason` label of the dropped-packets metric. */
export type DropReason = 'short' | 'version' | 'kind' | 'auth' | 'malformed' | 'oversize' | 'not-started' | 'address' | 'stream' | 'busy' | 'untrusted' | 'sender-mismatch';

/** What the driver reports as it runs (metrics, logs). Each call is quick and never throws. */
export interface GossipObserver {
  packet?(direction: 'in' | 'out', transport: 'udp' | 'tcp', bytes: number): void;
  dropped?(reason: DropReason): void;
  probeRoundTrip?(ms: number): void;
  event?(event: SwimEvent): void;
  log?(line: string): void;
}

/** One member as this node sees it. */
export interface GossipMemberView {
  readonly id: string;
  readonly address: string;
  readonly status: MemberState;
  readonly incarnation: number;
  readonly meta: MemberMeta;
  /** When this node last received a message from it (wall clock, ms); absent: never, or itself. */
  readonly lastHeardAt?: number;
}

export interface GossipRuntimeInit {
  /** Interface to bind, such as `0.0.0.0` or `127.0.0.1`. */
  bindHost: string;
  /** UDP and TCP port; 0 picks one free for both. */
  port: number;
  swimOptions?: Partial<SwimOptions>;
  observer?: GossipObserver;
  /**
   * Mutual TLS for push-pull streams, with the node's certificates of the
   * cluster CA: a stream from a peer without one, or whose `sync` names
   * another member than its certificate, is dropped. Absent: plain TCP (the
   * frames are sealed under the cluster key either way), for tests and the
   * benchmark.
   */
  tls?: PeerTls;
}

export interface GossipStartOptions {
  id: string;
  /** The `host:port` others reach this member at. */
  address: string;
  meta: MemberMeta;
  /** The 32-byte cluster key; the gossip key is derived from it. */
  clusterKey: Uint8Array;
  /** Gossip addresses of members to join through; may be empty (the first member). */
  seeds: readonly string[];
}

/** `host:port` or `[v6]:port` → parts; undefined if it is neither. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(address);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? match[2]!, port };
}

/** Crypto-strong randomness for the core. */
const cryptoRandom = { below: (n: number): number => (n <= 1 ? 0 : randomInt(n)) };

/** Runs one member. `bind()`, then `start()`, then `stop()`; one instance, one life. */
export class GossipRuntime {
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private boundPort = 0;
  private swim: Swim | undefined;
  private key: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Member id → when a message from it last arrived (wall clock, ms): what `nodes` shows as last seen. Only known members are kept. */
  private readonly lastHeard = new Map<string, number>();
  private readonly inboundStreams = new Set<Socket>();
  private readonly outboundStreams = new Set<Socket>();
  /** While the core handles an inbound push-pull request: the sender's address and the socket to answer on. */
  private answering: { address: string; socket: Socket; answered: boolean } | undefined;
  private stopFollowingTls: (() => void) | undefined;
  private readonly observer: GossipObserver;

  constructor(private readonly init: GossipRuntimeInit) {
    this.observer = init.observer ?? {};
  }

  /** The bound port (UDP and TCP). */
  get port(): number {
    return this.boundPort;
  }

  /** The push-pull listener: TLS that requires a verified client certificate when `init.tls` is set. */
  private createStreamServer(): Server {
    const tls = this.init.tls;
    if (tls === undefined) return createServer((socket) => this.acceptStream(socket, undefined));
    const material = tls.current;
    const server = createTlsServer({ requestCert: true, rejectUnauthorized: true, ...(material === undefined ? {} : secureContextOf(material)) }, (socket) => {
      const verdict = tls.verifyPeer(socket.getPeerCertificate());
      if (!verdict.ok) {
        this.drop('untrusted');
        socket.destroy();
        return;
      }
      this.acceptStream(socket, verdict.nodeId);
    });
    // A handshake that fails (no certificate, another CA's, a plain TCP client) never reaches the handler.
    server.on('tlsClientError', () => this.drop('untrusted'));
    this.stopFollowingTls = tls.onUpdate((next) => server.setSecureContext(secureContextOf(next)));
    return server;
  }

  /** Binds the UDP socket and the TCP listener on one port number. */
  async bind(): Promise<number> {
    assert(this.udp === undefined, 'gossip: bind() called twice');
    let lastError: unknown;
    for (let attempt = 0; attempt < (this.init.port === 0 ? BIND_ATTEMPTS_MAX : 1); attempt++) {
      const udp = createSocket({ type: this.init.bindHost.includes(':') ? 'udp6' : 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(this.init.port, this.init.bindHost, () => {
            udp.off('error', reject);
            resolve();
          });
        });
        const port = udp.address().port;
        const tcp = this.createStreamServer();
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, this.init.bindHost, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
        tcp.on('error', (error) => this.observer.log?.(`push-pull listener: ${error.message}`));
        udp.on('error', (error) => this.observer.log?.(`udp socket: ${error.message}`));
        udp.on('message', (data, remote) => this.receiveDatagram(data, remote.family === 'IPv6' ? `[${remote.address}]:${remote.port}` : `${remote.address}:${remote.port}`));
        this.udp = udp;
        this.tcp = tcp;
        this.boundPort = port;
        return port;
      } catch (error) {
        lastError = error;
        udp.close();
      }
    }
    throw new Error(`cannot bind gossip (UDP and TCP) on ${this.init.bindHost}:${this.init.port}: ${(lastError as Error).message}`);
  }

  /** Starts the protocol: builds the core with this member's identity and joins through `seeds`. */
  start(options: GossipStartOptions): void {
    assert(this.udp !== undefined, 'gossip: start() before bind()');
    assert(this.swim === undefined, 'gossip: start() called twice');
    this.key = deriveGossipKey(options.clusterKey);
    // Wall-clock seconds: a restarted member comes back above every incarnation its previous life gossiped.
    const incarnation = Math.floor(Date.now() / 1000) >>> 0;
    this.swim = new Swim({
      self: { id: options.id, address: options.address, meta: options.meta },
      incarnation,
      random: cryptoRandom,
      options: this.init.swimOptions,
    });
    this.swim.join(options.seeds);
    this.flush();
  }

  /** Asks members at these addresses for a full-state exchange (new seeds, or ones not yet heard from). */
  contact(addresses: readonly string[]): void {
    if (this.swim === undefined || this.stopped || addresses.length === 0) return;
    this.swim.join(addresses);
    this.flush();
  }

  /** Publishes new metadata for this member (a new incarnation carries it). */
  updateMeta(meta: MemberMeta): void {
    if (this.swim === undefined || this.stopped) return;
    this.swim.updateMeta(meta);
    this.flush();
  }

  /** Every member this node knows, itself included. */
  members(): GossipMemberView[] {
    if (this.swim === undefined) return [];
    return this.swim.snapshot().map((m) => this.viewOf(m));
  }

  /** One member as this node sees it; undefined when unknown (or reaped), or before start. */
  member(id: string): GossipMemberView | undefined {
    const m = this.swim?.lookup(id);
    return m && this.viewOf(m);
  }

  private viewOf(m: { id: string; address: string; state: MemberState; incarnation: number; meta: MemberMeta }): GossipMemberView {
    const heard = this.lastHeard.get(m.id);
    return { id: m.id, address: m.address, status: m.state, incarnation: m.incarnation, meta: m.meta, ...(heard !== undefined ? { lastHeardAt: heard } : {}) };
  }

  /**
   * Notes that a message from `id` arrived now, when `id` is a member (a
   * claimed id of nobody is not kept). Members SWIM has reaped are dropped
   * when a new id arrives, so churn does not grow the map.
   */
  private heardFrom(id: string): void {
    const swim = this.swim;
    if (swim?.lookup(id) === undefined) return;
    if (!this.lastHeard.has(id)) for (const known of this.lastHeard.keys()) if (swim.lookup(known) === undefined) this.lastHeard.delete(known);
    this.lastHeard.set(id, Date.now());
  }

  /** Local health (1 healthy, up to awarenessMax). */
  /** The running totals of probes and refutations (zeros before start). */
  get counts(): Readonly<SwimTotals> {
    return this.swim?.counts ?? { probesAcked: 0, probesFailed: 0, refutations: 0 };
  }

  get healthMultiplier(): number {
    return this.swim?.healthMultiplier ?? 1;
  }

  /** Announces the leave (if started), lets it spread for a moment, and closes everything. Idempotent. */
  async stop(options: { announceLeave?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    if (this.swim !== undefined && options.announceLeave !== false) {
      this.swim.leave();
      this.flush();
      await new Promise((resolve) => setTimeout(resolve, LEAVE_PROPAGATION_MS));
    }
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopFollowingTls?.();
    for (const socket of [...this.inboundStreams, ...this.outboundStreams]) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => (this.udp ? this.udp.close(() => resolve()) : resolve())),
      new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve())),
    ]);
  }

  // ---------------------------------------------------------------- time

  private now(): number {
    return performance.now();
  }

  /** Drains the core's outputs and arms the timer for its next deadline. */
  private flush(): void {
    const swim = this.swim;
    if (swim === undefined || this.stopped) return;
    for (const event of swim.drainEvents()) this.observer.event?.(event);
    for (const ms of swim.drainProbeRoundTrips()) this.observer.probeRoundTrip?.(ms);
    for (const { to, message } of swim.drainOutbox()) this.send(to, message);
    clearTimeout(this.timer);
    // Alone (a cluster of one): nothing to probe or push; the next datagram or sync flushes again.
    if (swim.idleAlone) return;
    const deadline = swim.nextDeadlineMs();
    if (deadline === undefined) return;
    this.timer = setTimeout(() => {
      if (this.stopped) return;
      swim.tick(this.now());
      this.flush();
    }, Math.max(0, Math.min(1000, Math.ceil(deadline - this.now()))));
  }

  // ---------------------------------------------------------------- datagrams

  private drop(reason: DropReason): void {
    this.observer.dropped?.(reason);
  }

  private receiveDatagram(data: Buffer, fromAddress: string): void {
    if (this.stopped) return;
    this.observer.packet?.('in', 'udp', data.length);
    if (this.swim === undefined || this.key === undefined) return this.drop('not-started');
    if (data.length > DATAGRAM_BYTES_MAX) return this.drop('oversize');
    const opened = open(this.key, EnvelopeKind.datagram, data);
    if (!opened.ok) return this.drop(opened.reason);
    const message = decodeMessage(opened.plaintext);
    if (message === undefined || message.type === 'sync') return this.drop('malformed');
    this.swim.receive(fromAddress, message, this.now());
    this.heardFrom(message.from);
    this.flush();
  }

  private send(to: string, message: Message): void {
    const target = parseHostPort(to);
    if (target === undefined) return this.drop('address');
    if (message.type === 'sync') return this.sendSync(to, target, message);
    const plaintext = encodeMessage(message);
    if (plaintext.length + ENVELOPE_OVERHEAD_BYTES > DATAGRAM_BYTES_MAX) return this.drop('oversize'); // the core's estimate keeps us well under; never expected
    const packet = seal(this.key!, EnvelopeKind.datagram, plaintext);
    this.observer.packet?.('out', 'udp', packet.length);
    this.udp!.send(packet, target.port, target.host, (error) => {
      if (error) this.observer.log?.(`sending to ${to}: ${error.message}`);
    });
  }

  // ---------------------------------------------------------------- push-pull

  private sendSync(to: string, target: { host: string; port: number }, message: Extract<Message, { type: 'sync' }>): void {
    const answering = this.answering;
    if (answering !== undefined && !message.reply && answering.address === to && !answering.answered) {
      answering.answered = true;
      this.writeFrame(answering.socket, EnvelopeKind.streamAnswer, message);
      answering.socket.end();
      return;
    }
    if (this.outboundStreams.size >= STREAMS_MAX) return this.drop('busy');
    const socket = this.connectStream(target);
    if (socket === undefined) return this.drop('not-started');
    this.outboundStreams.add(socket);
    socket.setTimeout(STREAM_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => undefined); // a refused or reset connection: the member is gone or restarting; probes will tell
    socket.on('close', () => this.outboundStreams.delete(socket));
    socket.once(this.init.tls === undefined ? 'connect' : 'secureConnect', () => {
      if (!this.writeFrame(socket, EnvelopeKind.streamRequest, message)) return;
      if (!message.reply) socket.end();
    });
    if (message.reply) {
      readFrame(socket, (frame) => {
        socket.end();
        if (frame === undefined) return this.drop('stream');
        const answer = this.openFrame(frame, EnvelopeKind.streamAnswer);
        if (answer === undefined || this.swim === undefined || this.stopped) return;
        this.swim.receive(to, answer, this.now());
        this.flush();
      });
    }
  }

  /** A push-pull connection: TLS presenting this node's certificate and accepting only a member's, when `init.tls` is set. */
  private connectStream(target: { host: string; port: number }): Socket | undefined {
    const tls = this.init.tls;
    if (tls === undefined) return createConnection({ host: target.host, port: target.port });
    const material = tls.current;
    if (material === undefined) return undefined;
    return tlsConnect({
      host: target.host,
      port: target.port,
      servername: TLS_SERVER_NAME,
      ...secureContextOf(material),
      checkServerIdentity: (_host, certificate) => {
        const verdict = tls.verifyPeer(certificate);
        return verdict.ok ? undefined : new Error(`the member's certificate was refused: ${verdict.reason}`);
      },
    });
  }

  private writeFrame(socket: Socket, kind: EnvelopeKind, message: Message): boolean {
    const sealed = seal(this.key!, kind, encodeMessage(message));
    if (sealed.length > STREAM_FRAME_BYTES_MAX) {
      socket.destroy();
      this.drop('oversize');
      return false;
    }
    const header = Buffer.alloc(4);
    header.writeUInt32BE(sealed.length);
    this.observer.packet?.('out', 'tcp', sealed.length + 4);
    socket.write(Buffer.concat([header, sealed]));
    return true;
  }

  private openFrame(frame: Buffer, kind: EnvelopeKind): Extract<Message, { type: 'sync' }> | undefined {
    this.observer.packet?.('in', 'tcp', frame.length + 4);
    if (this.key === undefined) {
      this.drop('not-started');
      return undefined;
    }
    const opened = open(this.key, kind, frame);
    if (!opened.ok) {
      this.drop(opened.reason);
      return undefined;
    }
    const message = decodeMessage(opened.plaintext);
    if (message === undefined || message.type !== 'sync') {
      this.drop('malformed');
      return undefined;
    }
    return message;
  }

  /** An inbound stream; `peer` is the node its verified certificate names (undefined without TLS). */
  private acceptStream(socket: Socket | TLSSocket, peer: string | undefined): void {
    if (this.stopped || this.inboundStreams.size >= STREAMS_MAX) {
      this.drop('busy');
      socket.destroy();
      return;
    }
    this.inboundStreams.add(socket);
    socket.setTimeout(STREAM_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('close', () => this.inboundStreams.delete(socket));
    readFrame(socket, (frame) => {
      if (frame === undefined) {
        this.drop('stream');
        socket.destroy();
        return;
      }
      const request = this.openFrame(frame, EnvelopeKind.streamRequest);
      const sender = request?.members.find((member) => member.id === request.from);
      if (request === undefined || this.swim === undefined || this.stopped) return void socket.destroy();
      if (sender === undefined || parseHostPort(sender.address) === undefined) {
        this.drop('malformed');
        socket.destroy();
        return;
      }
      if (peer !== undefined && request.from !== peer) {
        this.drop('sender-mismatch');
        socket.destroy();
        return;
      }
      this.answering = { address: sender.address, socket, answered: false };
      try {
        this.swim.receive(sender.address, request, this.now());
        this.heardFrom(request.from);
        this.flush();
      } finally {
        if (!this.answering.answered) socket.end();
        this.answering = undefined;
      }
    });
  }
}

/**
 * Reads one length-prefixed frame from `socket` and calls `done` once, with
 * the frame, or undefined if the stream ended early, broke, or announced more
 * than STREAM_FRAME_BYTES_MAX.
 */
function readFrame(socket: Socket, done: (frame: Buffer | undefined) => void): void {
  const chunks: Buffer[] = [];
  let received = 0;
  let expected: number | undefined;
  let finished = false;
  const finish = (frame: Buffer | undefined): void => {
    if (finished) return;
    finished = true;
    socket.off('data', onData);
    done(frame);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    received += chunk.length;
    if (expected === undefined && received >= 4) {
      expected = Buffer.concat(chunks).readUInt32BE(0);
      if (expected > STREAM_FRAME_BYTES_MAX || expected < ENVELOPE_OVERHEAD_BYTES) {
        finish(undefined);
        socket.destroy();
        return;
      }
    }
    if (expected !== undefined && received >= 4 + expected) finish(Buffer.concat(chunks).subarray(4, 4 + expected));
  };
  socket.on('data', onData);
  socket.once('end', () => finish(undefined));
  socket.once('close', () => finish(undefined));
}
