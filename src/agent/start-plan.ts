/**
 * How a node starts, chosen from its data directory and the start mode
 * (docs/internals/agent.md, "Starting"): restart a member, bootstrap a new
 * one-node cluster, or join one. Reads the data directory; writes nothing but
 * a reset of a membership that ended (a node that left joins anew).
 */
import { generateClusterKey, generateToken } from '../state/secrets.js';
import { AgentError } from './agent-error.js';
import type { DataDir, NodeIdentity } from '../node/data-dir.js';

/** How the agent starts. */
export type StartMode = 'bootstrap-or-restart' | { join: string };

/** What the start does, with the identity and key it starts from. */
export type StartPlan =
  | { type: 'restart'; identity: NodeIdentity; clusterKey: Uint8Array }
  /** `token`: the join token to store once this node leads (the configured one, or a fresh one). */
  | { type: 'bootstrap'; identity: NodeIdentity; clusterKey: Uint8Array; token: string }
  | { type: 'join'; identity: NodeIdentity; seed: string; token: string };

/** What `chooseStartPlan` reads. */
export interface StartPlanInput {
  name: string;
  dataDir: DataDir;
  mode: StartMode;
  /** `--token`, if given. */
  token: string | undefined;
  /** ISO time for a new identity's `createdAt`. */
  nowIso: string;
  log: (line: string) => void;
}

/** Chooses the plan; throws AgentError when the data directory or the settings rule every plan out. */
export function chooseStartPlan(input: StartPlanInput): StartPlan {
  const { dataDir, name } = input;
  dataDir.ensure();
  let identity = dataDir.readIdentity();
  const joinSeed = typeof input.mode === 'object' ? input.mode.join : undefined;
  if (identity !== undefined && identity.name !== name) {
    throw new AgentError('data-dir', `the data directory ${dataDir.path} belongs to node "${identity.name}", not "${name}"; use --name ${identity.name}, or another --data-dir`);
  }
  if (identity?.left) {
    if (joinSeed === undefined) {
      throw new AgentError('left', `node "${name}" has left its cluster; run \`hivemind join <seed>\` to join one again (the data directory is reset), or use an empty --data-dir to start a new cluster`);
    }
    input.log('this node left its cluster earlier: resetting its data directory to join again');
    dataDir.resetMembership();
    identity = undefined;
  }
  if (identity !== undefined) {
    if (joinSeed !== undefined) input.log(`the data directory already belongs to a member: restarting it, not joining through ${joinSeed}`);
    const clusterKey = dataDir.readClusterKey();
    if (clusterKey === undefined) throw new AgentError('data-dir', `the data directory ${dataDir.path} has node.json but no cluster.key; restore cluster.key from a backup, or start with an empty data directory and join again`);
    return { type: 'restart', identity, clusterKey };
  }
  if (dataDir.hasRaftData()) {
    throw new AgentError('data-dir', `the data directory ${dataDir.path} holds Raft data but no node.json; restore node.json from a backup, or start with an empty data directory`);
  }
  if (joinSeed !== undefined) {
    if (input.token === undefined) throw new AgentError('config', 'joining needs the cluster\'s join token: pass --token (or HIVEMIND_TOKEN); `hivemind token` on a member shows it');
    return { type: 'join', identity: { format: 1, name, origin: 'join', createdAt: input.nowIso, peers: {} }, seed: joinSeed, token: input.token };
  }
  // A join began here and did not finish (the agent's start records it): bootstrapping would make a second cluster beside the one it was joining.
  const pending = dataDir.readJoinPending();
  if (pending !== undefined) {
    throw new AgentError('data-dir', `the data directory ${dataDir.path} began joining a cluster through ${pending.seed} (${pending.startedAt}) and the join did not finish; run \`hivemind join ${pending.seed}\` again, or use an empty --data-dir to start a new cluster`);
  }
  // Written once the API port is bound (see the agent's start), so a failed first start leaves no half cluster.
  return {
    type: 'bootstrap',
    identity: { format: 1, name, origin: 'bootstrap', createdAt: input.nowIso, peers: {} },
    clusterKey: generateClusterKey(),
    token: input.token ?? generateToken(),
  };
}
