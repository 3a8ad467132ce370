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
 *
 * This file holds what a client of the API uses (the CLI, tests, tools) and
 * loads undici; the agent itself imports `server-tls.ts` and
 * `peer-api-client.ts`, which load undici only when a node first calls
 * another's API (an idle node never does).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'undici';
import { nodeIdentityCheck } from './server-tls.js';

export { nodeIdentityCheck, serverTlsOptions } from './server-tls.js';

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
