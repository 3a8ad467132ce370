/**
 * TLS for the API: what the server presents, and how one node's API reaches
 * another's.
 *
 * The server presents this node's certificate followed by the CA certificate
 * that signed it (so a client holding only the CA verifies the chain), and
 * follows the node's credentials: a renewal or a CA change takes effect for
 * the next handshake, without a restart.
 *
 * A node calling another node's API (a forwarded write, a log) trusts the
 * cluster's CA certificates and accepts the server only if its certificate
 * names the node it meant to reach, as the peer port's channels do
 * (NodeCredentials.channelCredentials). Host names are not checked: a
 * node's identity is its id, not the address it was reached at.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import { nodeIdOfCertificate } from '../security/certificates.js';
import type { NodeCredentials, TlsMaterial } from '../security/node-credentials.js';

/** The key and certificate chain (node certificate, then its issuer) a server presents. */
export function serverTlsOptions(material: TlsMaterial): { key: string; cert: string } {
  const issuer = issuerOf(material.certificatePem, material.caPems);
  return { key: material.keyPem, cert: issuer === undefined ? material.certificatePem : `${material.certificatePem.trimEnd()}\n${issuer}` };
}

/** The CA certificate of `caPems` that issued `certificatePem`, if any. */
function issuerOf(certificatePem: string, caPems: readonly string[]): string | undefined {
  const certificate = new X509Certificate(certificatePem);
  return caPems.find((caPem) => {
    const ca = new X509Certificate(caPem);
    return certificate.checkIssued(ca) && certificate.verify(ca.publicKey);
  });
}

/**
 * A `checkServerIdentity` for node:tls (and undici's `connect`): accepts a
 * certificate that names a node (any node when `expectedNodeId` is
 * undefined, else exactly it), whatever host it was reached at. TLS has
 * verified the chain before this runs.
 */
export function nodeIdentityCheck(expectedNodeId?: string): (host: string, certificate: PeerCertificate) => Error | undefined {
  return (_host, certificate) => {
    const nodeId = nodeIdOfCertificate(certificate);
    if (nodeId === undefined) return new Error('the server\'s certificate names no Hivemind node');
    if (expectedNodeId !== undefined && nodeId !== expectedNodeId) {
      return new Error(`the server's certificate names node ${JSON.stringify(nodeId)}, not ${JSON.stringify(expectedNodeId)}`);
    }
    return undefined;
  };
}

/**
 * An undici Agent for a cluster's API: trusts `caPems` only and accepts any
 * node of the cluster (or `expectedNodeId` only). What the CLI, the tests,
 * the chaos harness and the benchmarks use to speak to a node.
 */
export function clusterApiAgent(caPems: readonly string[] | string, options: { expectedNodeId?: string; agent?: Agent.Options } = {}): Agent {
  const ca = typeof caPems === 'string' ? caPems : caPems.join('\n');
  return new Agent({
    ...options.agent,
    connect: { ...(options.agent?.connect as object | undefined), ca, checkServerIdentity: nodeIdentityCheck(options.expectedNodeId) },
  });
}

/** Options of a request to another node's API. */
export type PeerRequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'dispatcher'> & { method: Dispatcher.HttpMethod };

/**
 * Requests to other nodes' APIs: over HTTPS trusting the node's current CA
 * certificates and checking the server is the node meant, or over plain
 * HTTP when the API runs with --insecure-api (every node of a cluster then
 * does). One connection pool per node; the pools are replaced when the
 * credentials change.
 */
export class PeerApiClient {
  private readonly agents = new Map<string, Agent>();
  private readonly plainAgent: Agent | undefined;
  private readonly stopListening: (() => void) | undefined;

  constructor(private readonly options: { credentials: NodeCredentials | undefined; insecure: boolean; agentOptions?: Agent.Options }) {
    this.plainAgent = options.insecure ? new Agent(options.agentOptions) : undefined;
    this.stopListening = options.insecure ? undefined : options.credentials?.onUpdate(() => this.dropAgents());
  }

  /** `http` or `https`, as this cluster's APIs serve. */
  get scheme(): 'http' | 'https' {
    return this.options.insecure ? 'http' : 'https';
  }

  /** Sends `pathAndQuery` to node `nodeId`'s API at `address` (host:port). Rejects as undici does, and when this node has no TLS material yet. */
  request(nodeId: string, address: string, pathAndQuery: string, init: PeerRequestOptions): Promise<Dispatcher.ResponseData> {
    return request(`${this.scheme}://${address}${pathAndQuery}`, { ...init, dispatcher: this.agentFor(nodeId) });
  }

  /** Closes every pool. */
  async close(): Promise<void> {
    this.stopListening?.();
    const agents = [...this.agents.values(), ...(this.plainAgent === undefined ? [] : [this.plainAgent])];
    this.agents.clear();
    await Promise.all(agents.map((agent) => agent.close().catch(() => {})));
  }

  private agentFor(nodeId: string): Agent {
    if (this.plainAgent !== undefined) return this.plainAgent;
    let agent = this.agents.get(nodeId);
    if (agent === undefined) {
      const material = this.options.credentials?.current;
      if (material === undefined) throw new Error('this node has no TLS material yet, so it cannot verify another node\'s API');
      agent = clusterApiAgent(material.caPems, { expectedNodeId: nodeId, ...(this.options.agentOptions === undefined ? {} : { agent: this.options.agentOptions }) });
      this.agents.set(nodeId, agent);
    }
    return agent;
  }

  /** The CA changed: later requests open new connections with the new trust; requests under way finish on the old ones. */
  private dropAgents(): void {
    const old = [...this.agents.values()];
    this.agents.clear();
    for (const agent of old) void agent.close().catch(() => {});
  }
}

const dataDirAgents = new Map<string, { bundle: string; agent: Agent }>();

/**
 * An Agent trusting the CA bundle in a node's data directory
 * (`<dataDir>/tls/ca.crt`), for tools on that node's host: the tests, the
 * chaos harness, the benchmarks. The bundle is read again at every call and
 * a new Agent made when it changed (a CA rotation). Throws when the node has
 * no bundle yet (before its bootstrap or join completed).
 */
export function dataDirApiAgent(dataDir: string): Agent {
  const bundle = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
  const cached = dataDirAgents.get(dataDir);
  if (cached !== undefined && cached.bundle === bundle) return cached.agent;
  if (cached !== undefined) void cached.agent.close().catch(() => {});
  const agent = clusterApiAgent(bundle);
  dataDirAgents.set(dataDir, { bundle, agent });
  return agent;
}
