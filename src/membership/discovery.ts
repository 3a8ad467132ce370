/**
 * Finding a seed by the join token alone (`hivemind join --discover`), over
 * hyperswarm. Members announce themselves on a topic derived from the token;
 * a joiner looks the topic up and connects (hyperswarm's Noise-encrypted
 * streams). Knowing the topic is not enough: both ends prove they hold the
 * token before the member says where its peer port is.
 *
 *   topic     = SHA-256(HKDF(token, info "hivemind/discovery/topic"))
 *   proof key = HKDF(token, info "hivemind/discovery/proof")
 *   each side sends  { hello: 32 random bytes (hex) }
 *   each side sends  { proof: HMAC(proof key, role | own hello | other hello | Noise handshake hash) }
 *   the member, once the joiner's proof checks, sends { seed: "host:port" }
 *
 * Binding the proof to the Noise handshake hash means a proof seen on one
 * connection is worthless on another. The token never travels. A token
 * rotation changes the topic: members announce again under the new one.
 */
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import DHT from 'hyperdht';
import Hyperswarm, { type SwarmConnection } from 'hyperswarm';

/** A DHT bootstrap node; tests use a local one, production hyperswarm's public ones. */
export interface BootstrapNode {
  host: string;
  port: number;
}

/** The topic and proof key of one join token. */
export interface DiscoveryKeys {
  topic: Buffer;
  proofKey: Buffer;
}

/**
 * The DHT bootstrap nodes named by `HIVEMIND_DISCOVERY_BOOTSTRAP`
 * (`host:port[,host:port]`): undefined when unset (hyperswarm's public
 * bootstrap nodes), or the reason the text is wrong.
 */
export function parseBootstrapList(text: string | undefined): { ok: true; nodes: BootstrapNode[] | undefined } | { ok: false; problem: string } {
  if (text === undefined || text.trim() === '') return { ok: true, nodes: undefined };
  const nodes: BootstrapNode[] = [];
  for (const entry of text.split(',')) {
    const match = /^(.+):(\d{1,5})$/.exec(entry.trim());
    if (match === null || Number(match[2]) > 65535) return { ok: false, problem: `HIVEMIND_DISCOVERY_BOOTSTRAP must be host:port[,host:port], got "${entry.trim()}"` };
    nodes.push({ host: match[1]!, port: Number(match[2]) });
  }
  return { ok: true, nodes };
}

/** Discovery found no member that proved the token in time. */
export class DiscoveryError extends Error {
  readonly code = 'DISCOVERY_FAILED';
}

/** Longest line either end may send (bytes); a longer one ends the connection. */
const LINE_BYTES_MAX = 4096;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export function discoveryKeys(token: string): DiscoveryKeys {
  const secret = Buffer.from(token, 'utf8');
  const topicKey = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'hivemind/discovery/topic', 32));
  return {
    topic: createHash('sha256').update(topicKey).digest(),
    proofKey: Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'hivemind/discovery/proof', 32)),
  };
}

type Role = 'member' | 'joiner';

function proof(keys: DiscoveryKeys, role: Role, own: Buffer, other: Buffer, connection: SwarmConnection): Buffer {
  return createHmac('sha256', keys.proofKey)
    .update(`hivemind/discovery/v1/${role}`)
    .update(own)
    .update(other)
    .update(connection.handshakeHash ?? Buffer.alloc(0))
    .digest();
}

/**
 * Runs one end of the handshake on `connection`. Resolves with the member's
 * seed address (joiner), or undefined once done (member) or on any failure:
 * a bad proof, a malformed or oversized line, a timeout. Never throws.
 */
function handshake(connection: SwarmConnection, keys: DiscoveryKeys, role: Role, seedAddress?: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const ownHello = randomBytes(32);
    let otherHello: Buffer | undefined;
    let verified = false;
    let buffered = '';
    let settled = false;
    const finish = (value: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      connection.off('data', onData);
      if (role === 'joiner' || value === undefined) connection.destroy();
      else connection.end();
      resolve(value);
    };
    const timer = setTimeout(() => finish(undefined), HANDSHAKE_TIMEOUT_MS);
    const send = (value: Record<string, string>): void => void connection.write(`${JSON.stringify(value)}\n`);
    const other: Role = role === 'member' ? 'joiner' : 'member';
    const handle = (message: Record<string, unknown>): void => {
      if (otherHello === undefined) {
        if (typeof message.hello !== 'string' || !/^[0-9a-f]{64}$/.test(message.hello)) return finish(undefined);
        otherHello = Buffer.from(message.hello, 'hex');
        send({ proof: proof(keys, role, ownHello, otherHello, connection).toString('hex') });
        return;
      }
      if (!verified) {
        if (typeof message.proof !== 'string' || !/^[0-9a-f]{64}$/.test(message.proof)) return finish(undefined);
        const expected = proof(keys, other, otherHello, ownHello, connection);
        if (!timingSafeEqual(expected, Buffer.from(message.proof, 'hex'))) return finish(undefined);
        verified = true;
        if (role === 'member') {
          send({ seed: seedAddress! });
          finish(seedAddress);
        }
        return;
      }
      if (role === 'joiner' && typeof message.seed === 'string' && /^[^\s]{1,300}:\d{1,5}$/.test(message.seed)) return finish(message.seed);
      finish(undefined);
    };
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      if (buffered.length > LINE_BYTES_MAX) return finish(undefined);
      let newline: number;
      while (!settled && (newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          return finish(undefined);
        }
        if (typeof message !== 'object' || message === null || Array.isArray(message)) return finish(undefined);
        handle(message as Record<string, unknown>);
      }
    };
    connection.on('data', onData);
    connection.on('error', () => finish(undefined));
    connection.on('close', () => finish(undefined));
    send({ hello: ownHello.toString('hex') });
  });
}

/** What a member runs while it serves: announces on the token's topic and answers joiners that prove the token. */
export interface DiscoveryAnnouncer {
  stop(): Promise<void>;
}

/**
 * A swarm on the given DHT. With bootstrap nodes that are all on loopback (a
 * private DHT on one machine, as tests run), its own DHT node binds to
 * 127.0.0.1 too: bound to every interface, it would tell the others an
 * address they cannot connect back on, and the connection is never made.
 */
function createSwarm(bootstrap: BootstrapNode[] | undefined): Hyperswarm {
  if (bootstrap === undefined) return new Hyperswarm({});
  const loopback = bootstrap.every((node) => node.host === '127.0.0.1' || node.host === 'localhost');
  return loopback ? new Hyperswarm({ dht: new DHT({ bootstrap, host: '127.0.0.1' }) }) : new Hyperswarm({ bootstrap });
}

/**
 * Announces this member on the topic of `token`, answering each joiner that
 * proves the token with `seedAddress` (this node's peer address,
 * `host:port`). Resolves once the announcement is in the DHT.
 */
export async function announceForDiscovery(options: { token: string; seedAddress: string; bootstrap?: BootstrapNode[]; keys?: DiscoveryKeys }): Promise<DiscoveryAnnouncer> {
  const keys = options.keys ?? discoveryKeys(options.token);
  const swarm = createSwarm(options.bootstrap);
  swarm.on('connection', (connection) => {
    connection.on('error', () => undefined);
    void handshake(connection, keys, 'member', options.seedAddress);
  });
  const discovery = swarm.join(keys.topic, { server: true, client: false });
  await discovery.flushed();
  return { stop: () => swarm.destroy() };
}

/**
 * Finds a member of the cluster whose join token is `token` and returns its
 * peer address (`host:port`), the seed `hivemind join` goes on with.
 * Throws DiscoveryError if no member proves the token within `timeoutMs`.
 */
export async function discoverSeed(options: { token: string; bootstrap?: BootstrapNode[]; timeoutMs?: number; keys?: DiscoveryKeys }): Promise<string> {
  const keys = options.keys ?? discoveryKeys(options.token);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const swarm = createSwarm(options.bootstrap);
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new DiscoveryError(`no member of the cluster answered on its discovery topic within ${Math.round(timeoutMs / 1000)} s (check --token; or give a seed address: hivemind join HOST:PORT)`)),
        timeoutMs,
      );
      swarm.on('connection', (connection) => {
        connection.on('error', () => undefined);
        void handshake(connection, keys, 'joiner').then((seed) => {
          if (seed === undefined) return;
          clearTimeout(timer);
          resolve(seed);
        });
      });
      swarm.join(keys.topic, { server: false, client: true });
      void swarm.flush();
    });
  } finally {
    await swarm.destroy().catch(() => undefined);
  }
}
