/**
 * The cluster's join token on this node: opened from the state with the
 * cluster key (once per rotation), kept in the data directory's `token`
 * file (what `hivemind token` reads), and, on the leader of a cluster that
 * has none (a bootstrap, or one interrupted), stored, printed for the
 * operator, and followed by the first admin API token.
 */
import { apiTokenId, generateApiToken } from '../api/routes-tokens.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { TOKEN_ASSOCIATED_DATA, hashToken, openSecret, sealSecret } from '../state/secrets.js';
import type { Command, CommandResult } from '../state/types.js';
import type { DataDir } from '../node/data-dir.js';
import { pinnedToken } from '../security/pinned-token.js';

/** What the token keeper works with. */
export interface JoinTokensContext {
  machine: ClusterStateMachine;
  dataDir: DataDir;
  /** Undefined until this node holds it. */
  clusterKey(): Uint8Array | undefined;
  /** The cluster CA that signs now, to pin in printed tokens; undefined before this node has TLS material. */
  signingCaPem(): string | undefined;
  /** This node's advertised peer address, for the printed join command. */
  peerAddress(): string;
  proposeOwn(command: Command): Promise<CommandResult>;
  /** Lines for the operator. */
  print(line: string): void;
  log(line: string): void;
  logOnce(key: string, line: string): void;
}

/** See the file comment. */
export class JoinTokens {
  /** The token last opened, by the rotation index of its record. */
  #opened: { index: number; value: string } | undefined;
  /** The record (its rotation index) last written to the token file. */
  #fileIndex: number | undefined;

  constructor(private readonly context: JoinTokensContext) {}

  /** The join token in clear, if the state holds one this node can open. */
  current(): string | undefined {
    const record = this.context.machine.token();
    const key = this.context.clusterKey();
    if (record === undefined || key === undefined) return undefined;
    if (this.#opened?.index === record.rotatedIndex) return this.#opened.value;
    const opened = openSecret(key, { ciphertext: record.sealed, nonce: record.nonce }, TOKEN_ASSOCIATED_DATA);
    if (!opened.ok) {
      this.context.logOnce('token-unreadable', `cannot open the cluster's join token with this node's cluster key: ${opened.error.message}`);
      return undefined;
    }
    const value = Buffer.from(opened.plaintext).toString('utf8');
    this.#opened = { index: record.rotatedIndex, value };
    return value;
  }

  /** Writes the token file when the state's token rotated since the last write. Call after each `token.set` apply and restore. */
  syncFile(): void {
    const record = this.context.machine.token();
    if (record === undefined || this.#fileIndex === record.rotatedIndex) return;
    const token = this.current();
    if (token === undefined) return;
    this.context.dataDir.writeToken(token);
    this.#fileIndex = record.rotatedIndex;
  }

  /** Leader only: stores a join token (`tokenToStore()`'s) when the state has none. */
  async ensureStored(tokenToStore: () => string): Promise<void> {
    if (this.context.machine.token() !== undefined) return;
    const key = this.context.clusterKey();
    if (key === undefined) return;
    const token = tokenToStore();
    const sealed = sealSecret(key, token, TOKEN_ASSOCIATED_DATA);
    const result = await this.context.proposeOwn({ type: 'token.set', hash: hashToken(token), sealed: sealed.ciphertext, nonce: sealed.nonce });
    if (!result.ok) return;
    this.context.log('stored the cluster\'s join token');
    const shown = this.pinned(token);
    this.context.print(`join token: ${shown}`);
    this.context.print(`to add a node: hivemind join ${this.context.peerAddress()} --token ${shown}`);
    if (this.context.machine.apiTokens().length === 0) await this.storeAdminToken();
  }

  /**
   * The cluster's first API token, a cluster-admin named `admin`, made by the
   * node that stores the first join token: printed, and kept in the data
   * directory's `admin-token` file for the CLI on this machine.
   */
  private async storeAdminToken(): Promise<void> {
    const token = generateApiToken();
    const result = await this.context.proposeOwn({ type: 'apitoken.create', id: apiTokenId(token), name: 'admin', role: 'cluster-admin', tenants: ['*'], hash: hashToken(token) });
    if (!result.ok) return;
    this.context.dataDir.writeAdminToken(token);
    this.context.print(`admin token: ${this.pinned(token)} (also in ${this.context.dataDir.adminTokenPath}; \`hivemind tokens create\` makes others)`);
  }

  /** `token` with the signing CA pinned, when this node has one. */
  private pinned(token: string): string {
    const signingCa = this.context.signingCaPem();
    return signingCa === undefined ? token : pinnedToken(token, signingCa);
  }
}
