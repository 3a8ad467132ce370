/**
 * `hivemind recover --force-new-cluster`: the way out after a cluster lost its
 * quorum for good. Run on one surviving node while its agent is stopped, it
 * rewrites that node's Raft storage so the node is the only voter; the next
 * normal start elects it at once and the cluster serves again, with this
 * node's state.
 *
 * How: a configuration entry `{ voters: [name], learners: [] }` is appended
 * at lastIndex + 1 with term T + 1 (T the highest term on disk), and the hard
 * state becomes `{ term: T + 1, vote: name, commit: that index }`.
 *
 * Consequences, on purpose: every entry in this node's log is now committed,
 * including entries the old cluster never committed (they were proposed, and
 * possibly acknowledged to nobody); entries other nodes had committed but this
 * one never received are lost. The other nodes must not come back with their
 * old data: wipe their data directories and `hivemind join` them again. Their
 * records stay; the membership manager marks them down after the grace.
 */
import { LevelStorage } from '../../consensus/storage-level.js';
import { EntryType } from '../../consensus/core/types.js';
import type { Entry } from '../../consensus/core/types.js';
import { DataDir, DataDirError } from '../node/data-dir.js';

/** Which node `recover` rewrites. */
export interface RecoverOptions {
  dataDir: string;
  /** This node's name; must match its data directory's. Default: the name in node.json. */
  name?: string;
}

/** What `recover` did, for the operator. */
export interface RecoverOutcome {
  name: string;
  /** The index of the new configuration entry. */
  index: number;
  term: number;
  /** Entries of the old log that were not known committed and now are. */
  entriesNewlyCommitted: number;
  /** The voters and learners of the configuration that was replaced. */
  previousMembers: string[];
}

/**
 * Rewrites the Raft storage of a stopped node so that it alone forms the
 * cluster. Rejects with DataDirError when the directory holds no member of a
 * cluster, names another node, or is in use (LevelDB's lock: stop the agent first).
 */
export async function recover(options: RecoverOptions): Promise<RecoverOutcome> {
  const dataDir = new DataDir(options.dataDir);
  const identity = dataDir.readIdentity();
  if (identity === undefined || !dataDir.hasRaftData()) {
    throw new DataDirError(`cannot recover: ${options.dataDir} holds no cluster member (no node.json or no Raft data); point --data-dir at a surviving node's data directory`);
  }
  if (options.name !== undefined && options.name !== identity.name) {
    throw new DataDirError(`cannot recover: ${options.dataDir} belongs to node "${identity.name}", not "${options.name}"; use --name ${identity.name}`);
  }
  if (identity.left) {
    throw new DataDirError(`cannot recover: node "${identity.name}" has left its cluster; recover from a node that had not`);
  }
  const name = identity.name;
  const storage = new LevelStorage({ directory: dataDir.raftPath });
  try {
    await openStorage(storage, options.dataDir);
    const persisted = await storage.load();
    const snapshotIndex = persisted.snapshot?.meta.index ?? 0;
    const snapshotTerm = persisted.snapshot?.meta.term ?? 0;
    const lastEntry = persisted.entries[persisted.entries.length - 1];
    const lastIndex = lastEntry?.index ?? snapshotIndex;
    const lastTerm = lastEntry?.term ?? snapshotTerm;
    const previousConfig = [...persisted.entries].reverse().find((entry) => entry.type === EntryType.Config)?.config ?? persisted.snapshot?.meta.config;
    const term = Math.max(persisted.hardState.term, lastTerm) + 1;
    const index = lastIndex + 1;
    const entry: Entry = { term, index, type: EntryType.Config, data: new Uint8Array(0), config: { voters: [name], learners: [] } };
    await storage.persist({ hardState: { term, vote: name, commit: index }, entries: [entry] }, true);
    return {
      name,
      index,
      term,
      entriesNewlyCommitted: Math.max(0, lastIndex - Math.max(persisted.hardState.commit, snapshotIndex)),
      previousMembers: previousConfig ? [...previousConfig.voters, ...previousConfig.learners] : [],
    };
  } finally {
    await storage.close().catch(() => {});
  }
}

async function openStorage(storage: LevelStorage, path: string): Promise<void> {
  try {
    await storage.open();
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    const locked = (error as { code?: string }).code === 'LEVEL_LOCKED' || cause?.code === 'LEVEL_LOCKED';
    throw new DataDirError(
      locked
        ? `cannot recover: the Raft storage in ${path} is in use; stop the agent on this node first`
        : `cannot recover: cannot open the Raft storage in ${path}: ${(error as Error).message}`,
    );
  }
}
