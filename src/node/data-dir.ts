/**
 * The agent's data directory:
 *
 *   raft/         the Raft log, hard state and snapshots (LevelDB, consensus/storage-level.ts)
 *   cluster.key   the cluster key: 32 raw bytes, mode 0600; seals secrets and the join token
 *   node.json     this node's identity: name, how it entered the cluster (and at which
 *                 record index), whether it left, and the last known peer addresses (a
 *                 fallback until the log is applied)
 *   token         the current join token in clear, mode 0600, rewritten when it rotates,
 *                 so that `hivemind token` on a member can show it (`readLocalToken`)
 *   admin-token   the cluster-admin API token this node made when it founded the cluster,
 *                 mode 0600; the CLI on this machine prefers it to the join token
 *
 * Files are replaced atomically (write a temporary file, fsync, rename). A
 * file that exists but cannot be read as expected is a `DataDirError`: the
 * agent refuses to start rather than guess.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, chmodSync, existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLUSTER_KEY_BYTES } from '../state/secrets.js';

/** The data directory cannot be used; the message says which file and what to do. */
export class DataDirError extends Error {
  readonly code = 'DATA_DIR_INVALID';
}

/** How this node entered its cluster. */
export type NodeOrigin = 'bootstrap' | 'join';

/** The content of node.json. */
export interface NodeIdentity {
  format: 1;
  name: string;
  origin: NodeOrigin;
  /** ISO time the node first started in this data directory. */
  createdAt: string;
  /**
   * The `joinedIndex` of the node record this data directory's membership
   * began with (the Join answer's; absent for a bootstrap, and for a join
   * before the index was handed out). A record that says `left` with a
   * smaller `joinedIndex` is of an earlier membership under this name and is
   * not this node's leave.
   */
  joinedIndex?: number;
  /** Set once the node has left the cluster (or was removed); it must join again to serve. */
  left?: boolean;
  /** Peer addresses (`host:port`) by node id, as last known. */
  peers: Record<string, string>;
}

const IDENTITY_FILE = 'node.json';
const CLUSTER_KEY_FILE = 'cluster.key';
const TOKEN_FILE = 'token';
const ADMIN_TOKEN_FILE = 'admin-token';
const JOIN_PENDING_FILE = 'join-pending.json';
const RAFT_DIRECTORY = 'raft';
const TLS_DIRECTORY = 'tls';
const NODE_KEY_FILE = 'tls/node.key';
const NODE_CERTIFICATE_FILE = 'tls/node.crt';
const CA_BUNDLE_FILE = 'tls/ca.crt';
const BOOTSTRAP_CA_FILE = 'tls/bootstrap-ca.json';
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g;
const PRIVATE_FILE_MODE = 0o600;

/** Paths inside one data directory. */
export class DataDir {
  constructor(readonly path: string) {}

  get raftPath(): string {
    return join(this.path, RAFT_DIRECTORY);
  }

  /** Creates the directory (mode 0700) if it does not exist. */
  ensure(): void {
    mkdirSync(this.path, { recursive: true, mode: 0o700 });
  }

  /** Whether the Raft directory holds any file (an earlier start wrote to it). */
  hasRaftData(): boolean {
    return existsSync(this.raftPath) && readdirSync(this.raftPath).length > 0;
  }

  /** Removes the Raft directory, cluster key, token and TLS material (a node that left and joins again starts empty). */
  resetMembership(): void {
    rmSync(this.raftPath, { recursive: true, force: true });
    rmSync(join(this.path, TLS_DIRECTORY), { recursive: true, force: true });
    rmSync(join(this.path, CLUSTER_KEY_FILE), { force: true });
    rmSync(join(this.path, TOKEN_FILE), { force: true });
    rmSync(join(this.path, ADMIN_TOKEN_FILE), { force: true });
  }

  readIdentity(): NodeIdentity | undefined {
    const text = this.readOptional(IDENTITY_FILE);
    if (text === undefined) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text.toString('utf8'));
    } catch (error) {
      throw this.corrupt(IDENTITY_FILE, `it is not JSON (${(error as Error).message})`);
    }
    if (!isIdentity(value)) throw this.corrupt(IDENTITY_FILE, 'it does not have the fields of a node identity');
    return value;
  }

  writeIdentity(identity: NodeIdentity): void {
    this.writeAtomic(IDENTITY_FILE, Buffer.from(`${JSON.stringify(identity, null, 2)}\n`, 'utf8'), 0o644);
  }

  readClusterKey(): Uint8Array | undefined {
    const bytes = this.readOptional(CLUSTER_KEY_FILE);
    if (bytes === undefined) return undefined;
    if (bytes.length !== CLUSTER_KEY_BYTES) throw this.corrupt(CLUSTER_KEY_FILE, `it holds ${bytes.length} bytes, not ${CLUSTER_KEY_BYTES}`);
    return new Uint8Array(bytes);
  }

  writeClusterKey(key: Uint8Array): void {
    this.writeAtomic(CLUSTER_KEY_FILE, Buffer.from(key), PRIVATE_FILE_MODE);
  }

  writeToken(token: string): void {
    this.writeAtomic(TOKEN_FILE, Buffer.from(`${token}\n`, 'utf8'), PRIVATE_FILE_MODE);
  }

  /** Where `writeAdminToken` writes. */
  get adminTokenPath(): string {
    return join(this.path, ADMIN_TOKEN_FILE);
  }

  writeAdminToken(token: string): void {
    this.writeAtomic(ADMIN_TOKEN_FILE, Buffer.from(`${token}\n`, 'utf8'), PRIVATE_FILE_MODE);
  }

  readAdminToken(): string | undefined {
    const token = this.readOptional(ADMIN_TOKEN_FILE)?.toString('utf8').trim();
    return token === undefined || token === '' ? undefined : token;
  }

  readToken(): string | undefined {
    const bytes = this.readOptional(TOKEN_FILE);
    const token = bytes?.toString('utf8').trim();
    return token === undefined || token === '' ? undefined : token;
  }

  /**
   * This node's TLS material (tls/node.key, tls/node.crt, tls/ca.crt), or
   * undefined when none of the files exists. A partial set is corrupt.
   */
  readTls(): { keyPem: string; certificatePem: string; caPems: string[] } | undefined {
    const key = this.readOptional(NODE_KEY_FILE);
    const certificate = this.readOptional(NODE_CERTIFICATE_FILE);
    const bundle = this.readOptional(CA_BUNDLE_FILE);
    if (key === undefined && certificate === undefined && bundle === undefined) return undefined;
    if (key === undefined || certificate === undefined || bundle === undefined) {
      const missing = [[NODE_KEY_FILE, key], [NODE_CERTIFICATE_FILE, certificate], [CA_BUNDLE_FILE, bundle]].filter(([, value]) => value === undefined).map(([file]) => file);
      throw this.corrupt(missing.join(', '), 'the file is missing while the other TLS files exist');
    }
    const caPems = bundle.toString('utf8').match(PEM_CERTIFICATE) ?? [];
    if (caPems.length === 0) throw this.corrupt(CA_BUNDLE_FILE, 'it holds no PEM certificate');
    return { keyPem: key.toString('utf8'), certificatePem: certificate.toString('utf8'), caPems: caPems.map((pem) => pem.trim() + '\n') };
  }

  /** Writes the TLS material, the key private to the agent's user. */
  writeTls(material: { keyPem: string; certificatePem: string; caPems: readonly string[] }): void {
    mkdirSync(join(this.path, TLS_DIRECTORY), { recursive: true, mode: 0o700 });
    this.writeAtomic(NODE_KEY_FILE, Buffer.from(material.keyPem, 'utf8'), PRIVATE_FILE_MODE);
    this.writeAtomic(NODE_CERTIFICATE_FILE, Buffer.from(material.certificatePem, 'utf8'), 0o644);
    this.writeCaBundle(material.caPems);
  }

  /** Replaces the trusted CA certificates (a rotation seen in the state). */
  writeCaBundle(caPems: readonly string[]): void {
    mkdirSync(join(this.path, TLS_DIRECTORY), { recursive: true, mode: 0o700 });
    this.writeAtomic(CA_BUNDLE_FILE, Buffer.from(caPems.map((pem) => pem.trim() + '\n').join(''), 'utf8'), 0o644);
  }

  /**
   * The CA a bootstrap made, kept until the new cluster has it in its state
   * (its key sealed under the cluster key): a bootstrap interrupted before
   * that commits proposes it again on restart.
   */
  readBootstrapCa(): { certificatePem: string; keySealed: Uint8Array; keyNonce: Uint8Array } | undefined {
    const text = this.readOptional(BOOTSTRAP_CA_FILE);
    if (text === undefined) return undefined;
    try {
      const value = JSON.parse(text.toString('utf8')) as { certificatePem: string; keySealed: string; keyNonce: string };
      return { certificatePem: value.certificatePem, keySealed: new Uint8Array(Buffer.from(value.keySealed, 'base64')), keyNonce: new Uint8Array(Buffer.from(value.keyNonce, 'base64')) };
    } catch (error) {
      throw this.corrupt(BOOTSTRAP_CA_FILE, `it is not JSON (${(error as Error).message})`);
    }
  }

  writeBootstrapCa(ca: { certificatePem: string; keySealed: Uint8Array; keyNonce: Uint8Array }): void {
    mkdirSync(join(this.path, TLS_DIRECTORY), { recursive: true, mode: 0o700 });
    const text = JSON.stringify({ certificatePem: ca.certificatePem, keySealed: Buffer.from(ca.keySealed).toString('base64'), keyNonce: Buffer.from(ca.keyNonce).toString('base64') });
    this.writeAtomic(BOOTSTRAP_CA_FILE, Buffer.from(`${text}\n`, 'utf8'), PRIVATE_FILE_MODE);
  }

  /**
   * The join this data directory began and did not finish (`hivemind join`
   * writes it before it contacts the seed and removes it once the node is a
   * member). While it exists, a plain start must not bootstrap a cluster of
   * its own here.
   */
  readJoinPending(): { seed: string; startedAt: string } | undefined {
    const text = this.readOptional(JOIN_PENDING_FILE);
    if (text === undefined) return undefined;
    try {
      const value = JSON.parse(text.toString('utf8')) as { seed?: unknown; startedAt?: unknown };
      if (typeof value.seed !== 'string' || typeof value.startedAt !== 'string') throw new Error('it lacks "seed" or "startedAt"');
      return { seed: value.seed, startedAt: value.startedAt };
    } catch (error) {
      throw this.corrupt(JOIN_PENDING_FILE, `it is not the record of a join (${(error as Error).message})`);
    }
  }

  writeJoinPending(seed: string): void {
    this.writeAtomic(JOIN_PENDING_FILE, Buffer.from(`${JSON.stringify({ seed, startedAt: new Date().toISOString() })}\n`, 'utf8'), 0o644);
  }

  clearJoinPending(): void {
    rmSync(join(this.path, JOIN_PENDING_FILE), { force: true });
  }

  /** Drops the bootstrap CA file once the state holds the CA. */
  removeBootstrapCa(): void {
    rmSync(join(this.path, BOOTSTRAP_CA_FILE), { force: true });
  }

  private readOptional(file: string): Buffer | undefined {
    try {
      return readFileSync(join(this.path, file));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DataDirError(`cannot read ${join(this.path, file)}: ${(error as Error).message}`);
    }
  }

  private writeAtomic(file: string, data: Buffer, mode: number): void {
    this.ensure();
    const target = join(this.path, file);
    const temporary = `${target}.tmp-${process.pid}`;
    const descriptor = openSync(temporary, 'w', mode);
    try {
      writeSync(descriptor, data);
      fsyncSync(descriptor);
    } finally {
      closeSync(descriptor);
    }
    chmodSync(temporary, mode);
    renameSync(temporary, target);
    const directory = openSync(dirname(target), 'r');
    try {
      fsyncSync(directory);
    } finally {
      closeSync(directory);
    }
  }

  private corrupt(file: string, problem: string): DataDirError {
    return new DataDirError(
      `cannot use the data directory ${this.path}: ${file} is unreadable: ${problem}; ` +
        'restore it from a backup, or start with an empty data directory and join the cluster again',
    );
  }
}

/**
 * The join token a running or stopped member keeps in its data directory
 * (what `hivemind token` shows without being given one). Undefined when the
 * directory holds none yet.
 */
export function readLocalToken(dataDir: string): string | undefined {
  return new DataDir(dataDir).readToken();
}

/** The admin API token the founding node keeps in its data directory (what the CLI there sends), if any. */
export function readLocalAdminToken(dataDir: string): string | undefined {
  return new DataDir(dataDir).readAdminToken();
}

function isIdentity(value: unknown): value is NodeIdentity {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  const peers = record.peers;
  return (
    record.format === 1 &&
    typeof record.name === 'string' &&
    (record.origin === 'bootstrap' || record.origin === 'join') &&
    typeof record.createdAt === 'string' &&
    (record.left === undefined || typeof record.left === 'boolean') &&
    (record.joinedIndex === undefined || (Number.isSafeInteger(record.joinedIndex) && (record.joinedIndex as number) >= 0)) &&
    typeof peers === 'object' &&
    peers !== null &&
    Object.values(peers).every((address) => typeof address === 'string')
  );
}
