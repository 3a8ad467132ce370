/**
 * Requests from this node to other nodes' APIs (a forwarded write, another
 * node's logs, volumes or audit records), trusting the cluster's CA and
 * checking the server is the node meant (see tls.ts). undici is loaded by
 * the first request, not when the agent starts: a one-node cluster, and
 * any node that forwards nothing, never loads it (about 10 MiB of RSS).
 */
import type { Agent, Dispatcher } from 'undici';
import type { NodeCredentials } from '../security/node-credentials.js';
import { nodeIdentityCheck } from './server-tls.js';

type Undici = typeof import('undici');
let undiciLoading: Promise<Undici> | undefined;

/** undici, imported once on first use. */
function loadUndici(): Promise<Undici> {
  return (undiciLoading ??= import('undici'));
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
  private plainAgent: Agent | undefined;
  /** Set by close(): a request that was waiting for undici then makes no pool. */
  private closed = false;
  private readonly stopListening: (() => void) | undefined;

  constructor(private readonly options: { credentials: NodeCredentials | undefined; insecure: boolean; agentOptions?: Agent.Options }) {
    this.stopListening = options.insecure ? undefined : options.credentials?.onUpdate(() => this.dropAgents());
  }

  /** `http` or `https`, as this cluster's APIs serve. */
  get scheme(): 'http' | 'https' {
    return this.options.insecure ? 'http' : 'https';
  }

  /** Sends `pathAndQuery` to node `nodeId`'s API at `address` (host:port). Rejects as undici does, and when this node has no TLS material yet. */
  async request(nodeId: string, address: string, pathAndQuery: string, init: PeerRequestOptions): Promise<Dispatcher.ResponseData> {
    const undici = await loadUndici();
    if (this.closed) throw new Error('this node\'s API is stopping');
    return undici.request(`${this.scheme}://${address}${pathAndQuery}`, { ...init, dispatcher: this.agentFor(undici, nodeId) });
  }

  /** Closes every pool. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopListening?.();
    const agents = [...this.agents.values(), ...(this.plainAgent === undefined ? [] : [this.plainAgent])];
    this.agents.clear();
    await Promise.all(agents.map((agent) => agent.close().catch(() => {})));
  }

  private agentFor(undici: Undici, nodeId: string): Agent {
    if (this.options.insecure) return (this.plainAgent ??= new undici.Agent(this.options.agentOptions));
    let agent = this.agents.get(nodeId);
    if (agent === undefined) {
      const material = this.options.credentials?.current;
      if (material === undefined) throw new Error('this node has no TLS material yet, so it cannot verify another node\'s API');
      const connect = { ...(this.options.agentOptions?.connect as object | undefined), ca: material.caPems.join('\n'), checkServerIdentity: nodeIdentityCheck(nodeId) };
      agent = new undici.Agent({ ...this.options.agentOptions, connect });
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

