/**
 * The replicated state machine: applies committed envelopes in log order,
 * answers reads, and makes and restores snapshots.
 *
 * Apply is deterministic: it reads only the state, the index and the
 * envelope (no clock, no randomness, no I/O), so every node that applies the
 * same log holds byte-identical state. A bad command, whether malformed or
 * refused by the state, is never an exception: it becomes an error result,
 * identical on every node. Only a broken internal invariant asserts.
 *
 * Exactly once: the result of each request id is remembered (the newest
 * REQUESTS_REMEMBERED_MAX, evicted oldest index first); applying an envelope
 * with a remembered id changes nothing and returns the first result, with
 * the first index. Envelopes too malformed to carry a valid request id are
 * refused and not remembered.
 *
 * History: each successful command adds an entry (index, time, actor,
 * command, target, summary), at most HISTORY_MAX, oldest dropped. Refused
 * commands, node heartbeats and instance status reports are not recorded.
 */
import { assert } from '../../consensus/core/assert.js';
import { commandVersion, COMMANDS } from './commands.js';
import { isRevoked } from './apply-ca.js';
import type { CommandModule } from './command.js';
import { clusterVersionOf, clusterVersionToRaise, versionGateProblem } from './apply-cluster.js';
import type { StateError } from './errors.js';
import { tenantUsage, type Usage } from './quota.js';
import { decodeState, encodeState } from './snapshot.js';
import { emptyState, tenantKey, type ApplyContext, type ClusterState, type Plan } from './state.js';
import {
  DEFAULT_TENANT,
  HISTORY_MAX,
  REQUESTS_REMEMBERED_MAX,
  type App,
  type ClusterNetwork,
  type TenantNetwork,
  type Command,
  type CommandResult,
  type CommandType,
  type HistoryEntry,
  type Instance,
  type KvEntry,
  type NetworkPolicy,
  type NodeRecord,
  type Secret,
  type Tenant,
  type TokenRecord,
  type ApiTokenRecord,
  type CaRecord,
  type Volume,
} from './types.js';
import { validateCommand, validateEnvelopeHeader, type EnvelopeHeader } from './validate.js';
import { isPlainObject } from './schema.js';
import { STATE_VERSION, StateVersionError } from './version.js';

function planCommand(state: ClusterState, command: Command, context: ApplyContext): Plan {
  const gate = versionGateProblem(state, command.type, commandVersion(command));
  if (gate !== undefined) return { ok: false, error: gate };
  const module = COMMANDS[command.type] as CommandModule<CommandType>;
  return module.plan(state, command as never, context);
}

/** A secret without its value: what reads outside the executor may see. */
export type SecretMetadata = Omit<Secret, 'ciphertext' | 'nonce'>;

/** Which instances `instances()` returns; every given field must match. */
export interface InstanceFilter {
  tenant?: string;
  app?: string;
  node?: string;
}

/** The dry-run context of `check`; stamped like a proposal would be. */
export interface CheckOptions {
  time?: number;
  actor?: string;
}

/**
 * What the agent's loops read of a node record (peer addresses, Raft
 * membership): everything but `lastSeenAt`, which heartbeats change.
 */
export type NodeDirectoryEntry = Readonly<Omit<NodeRecord, 'lastSeenAt' | 'addresses' | 'labels' | 'resources'>> & {
  readonly addresses: Readonly<NodeRecord['addresses']>;
  readonly labels: Readonly<NodeRecord['labels']>;
  readonly resources: Readonly<NodeRecord['resources']>;
};

/** The cluster's replicated state. Not thread-safe; one owner applies in log order. */
export class ClusterStateMachine {
  #state: ClusterState = emptyState();
  /** Local, not replicated: moves on whenever `nodeDirectory()` would change (see NODE_RECORD_COMMANDS) and on restore. */
  #nodesRevision = 0;
  #directory: { revision: number; entries: readonly NodeDirectoryEntry[] } | undefined;

  /** A machine restored from a snapshot made by `snapshot()`. Asserts on a corrupt snapshot. */
  static restore(data: Uint8Array): ClusterStateMachine {
    const machine = new ClusterStateMachine();
    machine.restore(data);
    return machine;
  }

  /** The index of the last entry applied (or restored); 0 for a new machine. */
  get appliedIndex(): number {
    return this.#state.appliedIndex;
  }

  /** The cluster version (version.ts): commands of a higher version are refused until `cluster.version` raises it. */
  get clusterVersion(): number {
    return clusterVersionOf(this.#state);
  }

  /** The version `cluster.version` may raise the cluster to now (every member applies it), or undefined. The leader proposes it. */
  clusterVersionToRaise(): number | undefined {
    return clusterVersionToRaise(this.#state);
  }

  /**
   * The state version to write an envelope of `command` in: the cluster
   * version, or the command's own when higher (only `cluster.version` may be
   * proposed so). The proposer stamps it; see version.ts.
   */
  envelopeVersion(command: Command): number {
    return Math.max(this.clusterVersion, commandVersion(command));
  }

  /** The refusal of `command` when it is newer than the cluster version (`cluster.version` excepted), or undefined. What apply would answer. */
  versionGateProblem(command: Command): StateError | undefined {
    return versionGateProblem(this.#state, command.type, commandVersion(command));
  }

  /**
   * Applies the committed entry at `index`. Indexes must grow (entries that
   * carry no command, like Raft's no-ops, may be skipped); a smaller or equal
   * index asserts. `envelope` is untrusted decoded data: anything malformed
   * is refused with 'invalid-argument'. The returned result is frozen.
   * Throws StateVersionError, changing nothing, for an entry of a newer
   * state version than this code's: the node must stop there. A command
   * newer than the cluster version is refused ('cluster-version-too-old').
   */
  apply(index: number, envelope: unknown): CommandResult {
    assert(Number.isSafeInteger(index) && index > this.#state.appliedIndex, `apply at index ${index} after ${this.#state.appliedIndex}`);
    const version = isPlainObject(envelope) ? envelope.version : undefined;
    // Before anything changes: the node stops here (see version.ts).
    if (typeof version === 'number' && version > STATE_VERSION) throw new StateVersionError(index, version);
    this.#state.appliedIndex = index;
    const header = validateEnvelopeHeader(envelope);
    if (!header.ok) return deepFreeze({ ok: false, index, error: header.error });
    const remembered = this.#state.requests.get(header.header.requestId);
    if (remembered) return remembered;
    const result = deepFreeze(this.#decide(index, header.header, (envelope as { command: unknown }).command));
    this.#remember(header.header.requestId, result);
    return result;
  }

  #decide(index: number, header: EnvelopeHeader, rawCommand: unknown): CommandResult {
    const validated = validateCommand(rawCommand);
    if (!validated.ok) return { ok: false, index, error: validated.error };
    const context: ApplyContext = { index, time: header.time, actor: header.actor };
    const plan = planCommand(this.#state, validated.command, context);
    if (!plan.ok) return { ok: false, index, error: plan.error };
    const outcome = plan.commit();
    if (COMMANDS[validated.command.type].changesNodeRecords === true) this.#nodesRevision++;
    if (outcome.history) this.#record({ index, time: header.time, actor: header.actor, command: validated.command.type, ...outcome.history });
    return outcome.value === undefined ? { ok: true, index } : { ok: true, index, value: outcome.value };
  }

  #remember(requestId: string, result: CommandResult): void {
    const requests = this.#state.requests;
    requests.set(requestId, result);
    while (requests.size > REQUESTS_REMEMBERED_MAX) {
      const oldest = requests.keys().next();
      assert(!oldest.done, 'remembered requests cannot be empty while over their maximum');
      requests.delete(oldest.value);
    }
  }

  #record(entry: HistoryEntry): void {
    this.#state.history.push(entry);
    if (this.#state.history.length > HISTORY_MAX) this.#state.history.splice(0, this.#state.history.length - HISTORY_MAX);
  }

  /**
   * Runs every check `apply` would make for `command` against the current
   * state (structure, the cluster version, existence, references, quotas,
   * compare-and-set) and changes nothing. The API calls it before proposing, so a refusal is a
   * clear 4xx and nothing enters the log. The state may change before the
   * command applies; apply checks again.
   */
  check(command: unknown, options: CheckOptions = {}): { ok: true; command: Command } | { ok: false; error: StateError } {
    const validated = validateCommand(command);
    if (!validated.ok) return validated;
    const context: ApplyContext = { index: this.#state.appliedIndex + 1, time: options.time ?? 0, actor: options.actor ?? '' };
    const plan = planCommand(this.#state, validated.command, context);
    return plan.ok ? { ok: true, command: validated.command } : { ok: false, error: plan.error };
  }

  /** The whole state as bytes, for log compaction. Equal states give equal bytes. */
  snapshot(): Uint8Array {
    return encodeState(this.#state);
  }

  /** Replaces the whole state with a snapshot's (remembered requests and history included). Asserts on a corrupt snapshot. */
  restore(data: Uint8Array): void {
    const state = decodeState(data);
    for (const result of state.requests.values()) deepFreeze(result);
    this.#state = state;
    this.#nodesRevision++;
  }

  /** The result remembered for `requestId`, if it is among the newest REQUESTS_REMEMBERED_MAX. */
  rememberedResult(requestId: string): CommandResult | undefined {
    return this.#state.requests.get(requestId);
  }

  /** The remembered request ids that start with `prefix` (the API finds an Idempotency-Key's earlier use by it), oldest first. */
  rememberedRequestIds(prefix: string): string[] {
    const found: string[] = [];
    for (const requestId of this.#state.requests.keys()) if (requestId.startsWith(prefix)) found.push(requestId);
    return found;
  }

  // ---------------------------------------------------------------------------
  // Reads. Each returns a copy the caller owns; lists are sorted by name.

  /** All tenants by name. The `default` tenant is always listed (createdIndex 0 until it has a record). */
  tenants(): Tenant[] {
    const tenants = [...this.#state.tenants.values()];
    if (!this.#state.tenants.has(DEFAULT_TENANT)) tenants.push(implicitDefaultTenant());
    return copy(tenants.sort((left, right) => compare(left.name, right.name)));
  }

  /** One tenant; `default` always exists. */
  tenant(name: string): Tenant | undefined {
    const tenant = this.#state.tenants.get(name) ?? (name === DEFAULT_TENANT ? implicitDefaultTenant() : undefined);
    return tenant && copy(tenant);
  }

  /** What the tenant uses of each quota resource (zero for an unknown tenant). */
  usage(tenant: string): Usage {
    return tenantUsage(this.#state, tenant);
  }

  /** Apps, of one tenant or all, sorted by tenant then name. */
  apps(tenant?: string): App[] {
    return copy(byTenantAndName(filterTenant(this.#state.apps.values(), tenant)));
  }

  app(tenant: string, name: string): App | undefined {
    return copyOrUndefined(this.#state.apps.get(tenantKey(tenant, name)));
  }

  /** Instances matching `filter`, sorted by tenant, app, slot. */
  instances(filter: InstanceFilter = {}): Instance[] {
    const found = [...this.#state.instances.values()].filter(
      (instance) =>
        (filter.tenant === undefined || instance.tenant === filter.tenant) &&
        (filter.app === undefined || instance.app === filter.app) &&
        (filter.node === undefined || instance.node === filter.node),
    );
    found.sort((left, right) => compare(left.tenant, right.tenant) || compare(left.app, right.app) || left.slot - right.slot);
    return copy(found);
  }

  instance(id: string): Instance | undefined {
    return copyOrUndefined(this.#state.instances.get(id));
  }

  /** Every node record, sorted by id; copies the caller owns (`nodeDirectory()` shares one copy instead). */
  nodes(): NodeRecord[] {
    return [...this.#state.nodes.values()].sort((left, right) => compare(left.id, right.id)).map(copyNodeRecord);
  }

  node(id: string): NodeRecord | undefined {
    const record = this.#state.nodes.get(id);
    return record === undefined ? undefined : copyNodeRecord(record);
  }

  /**
   * A number that changes whenever `nodeDirectory()` would (a node record
   * registered, or its status, role or addresses changed, or a snapshot
   * restored), and not on heartbeats. Local to this process: compare it only
   * with values read from the same machine.
   */
  get nodesRevision(): number {
    return this.#nodesRevision;
  }

  /**
   * Every node record but `lastSeenAt`, sorted by id, frozen and shared: one
   * copy per `nodesRevision`, so loops that run many times a second over
   * thousands of records cost nothing until a record changes. The caller must
   * not keep it past a change it cares about (compare `nodesRevision`).
   */
  nodeDirectory(): readonly NodeDirectoryEntry[] {
    if (this.#directory?.revision !== this.#nodesRevision) {
      const entries = [...this.#state.nodes.values()].sort((left, right) => compare(left.id, right.id)).map(directoryEntry);
      this.#directory = { revision: this.#nodesRevision, entries: Object.freeze(entries) };
    }
    return this.#directory.entries;
  }

  policies(tenant?: string): NetworkPolicy[] {
    return copy(byTenantAndName(filterTenant(this.#state.policies.values(), tenant)));
  }

  policy(tenant: string, name: string): NetworkPolicy | undefined {
    return copyOrUndefined(this.#state.policies.get(tenantKey(tenant, name)));
  }

  volumes(tenant?: string): Volume[] {
    return copy(byTenantAndName(filterTenant(this.#state.volumes.values(), tenant)));
  }

  volume(tenant: string, name: string): Volume | undefined {
    return copyOrUndefined(this.#state.volumes.get(tenantKey(tenant, name)));
  }

  /** Secrets without their values. */
  secrets(tenant?: string): SecretMetadata[] {
    return byTenantAndName(filterTenant(this.#state.secrets.values(), tenant)).map(secretMetadata);
  }

  /** A secret's sealed value, for the executor that mounts it (it holds the cluster key). */
  secretCiphertext(tenant: string, name: string): { ciphertext: Uint8Array; nonce: Uint8Array; version: number } | undefined {
    const secret = this.#state.secrets.get(tenantKey(tenant, name));
    return secret && { ciphertext: new Uint8Array(secret.ciphertext), nonce: new Uint8Array(secret.nonce), version: secret.version };
  }

  kvGet(key: string): KvEntry | undefined {
    return copyOrUndefined(this.#state.kv.get(key));
  }

  /** Entries whose key starts with `prefix`, sorted by key (UTF-16 order), at most `limit`. */
  kvList(prefix = '', limit = Number.MAX_SAFE_INTEGER): KvEntry[] {
    const found = [...this.#state.kv.values()].filter((entry) => entry.key.startsWith(prefix));
    return copy(found.sort((left, right) => compare(left.key, right.key)).slice(0, limit));
  }

  /** Recent changes, newest first: at most `limit`, only those with an index below `before` when given. */
  history(limit: number = HISTORY_MAX, before?: number): HistoryEntry[] {
    const found: HistoryEntry[] = [];
    for (let position = this.#state.history.length - 1; position >= 0 && found.length < limit; position--) {
      const entry = this.#state.history[position];
      assert(entry !== undefined, 'history has no holes');
      if (before === undefined || entry.index < before) found.push({ ...entry });
    }
    return found;
  }

  /**
   * The scheduler's read: the live records, not copies (copying a hundred
   * thousand instances every round would cost more than planning). The
   * caller must not change them, and must not keep them past the next apply:
   * apply changes them in place.
   */
  schedulerView(): { nodes: readonly NodeRecord[]; instances: readonly Instance[]; apps: readonly App[]; volumes: readonly Volume[]; appliedIndex: number; clusterVersion: number } {
    return {
      clusterVersion: this.clusterVersion,
      nodes: [...this.#state.nodes.values()],
      instances: [...this.#state.instances.values()],
      apps: [...this.#state.apps.values()],
      volumes: [...this.#state.volumes.values()],
      appliedIndex: this.#state.appliedIndex,
    };
  }

  /** The cluster CA's record (without its deny list's copy cost: read it, do not keep it), if one was set. */
  ca(): Readonly<CaRecord> | undefined {
    return this.#state.ca;
  }

  /** Whether a certificate serial (upper-case hex) is revoked. */
  certificateRevoked(serial: string): boolean {
    return isRevoked(this.#state, serial);
  }

  /** The cluster network, once configured (`network.configure`). */
  network(): ClusterNetwork | undefined {
    return copyOrUndefined(this.#state.network);
  }

  /** Tenant networks (copies), in state order. */
  networks(): TenantNetwork[] {
    return [...this.#state.networks.values()].map(copy);
  }

  /** The join token's record, if one was set. */
  token(): TokenRecord | undefined {
    return copyOrUndefined(this.#state.token);
  }

  /** The API tokens, by id (copies). */
  apiTokens(): ApiTokenRecord[] {
    return copy([...this.#state.apiTokens.values()].sort((left, right) => compare(left.id, right.id)));
  }

  /** The API token whose hash is `hash` (a token's SHA-256, lowercase hex), if any; expired ones included. Read it, do not keep it. */
  apiTokenByHash(hash: string): Readonly<ApiTokenRecord> | undefined {
    for (const record of this.#state.apiTokens.values()) if (record.hash === hash) return record;
    return undefined;
  }
}

/**
 * A copy of a node record. Node records are plain data two levels deep
 * (fields, and the addresses, labels and resources objects of strings and
 * numbers), so a two-level copy is a deep one, several times cheaper than
 * structuredClone for thousands of records (loops read them often).
 */
function copyNodeRecord(record: NodeRecord): NodeRecord {
  return copyTwoLevels(record, false) as unknown as NodeRecord;
}

/** A frozen copy of `record` without `lastSeenAt` (see `copyNodeRecord`). */
function directoryEntry(record: NodeRecord): NodeDirectoryEntry {
  const { lastSeenAt: _lastSeenAt, ...rest } = record;
  return copyTwoLevels(rest, true) as unknown as NodeDirectoryEntry;
}

function copyTwoLevels(value: object, freeze: boolean): Record<string, unknown> {
  const copied: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (typeof inner !== 'object' || inner === null) {
      copied[key] = inner;
      continue;
    }
    if (Array.isArray(inner)) {
      // A list of flat records (a node's certificates).
      const items = inner.map((item: unknown) => {
        assert(typeof item === 'object' && item !== null && Object.values(item).every((nested) => typeof nested !== 'object' || nested === null), `node record field ${key} holds something other than flat records`);
        return freeze ? Object.freeze({ ...item }) : { ...item };
      });
      copied[key] = freeze ? Object.freeze(items) : items;
      continue;
    }
    const level: Record<string, unknown> = { ...inner };
    for (const [name, nested] of Object.entries(level)) {
      if (typeof nested !== 'object' || nested === null) continue;
      // A list of numbers or strings (a node's host ports by protocol).
      assert(Array.isArray(nested) && nested.every((item: unknown) => typeof item !== 'object' || item === null), `node record field ${key} nests deeper than two levels`);
      level[name] = freeze ? Object.freeze([...nested]) : [...nested];
    }
    copied[key] = freeze ? Object.freeze(level) : level;
  }
  return freeze ? Object.freeze(copied) : copied;
}

function implicitDefaultTenant(): Tenant {
  return { name: DEFAULT_TENANT, quota: {}, createdIndex: 0, createdAt: 0, uidOffset: 0 };
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

function filterTenant<T extends { tenant: string }>(values: Iterable<T>, tenant: string | undefined): T[] {
  return [...values].filter((value) => tenant === undefined || value.tenant === tenant);
}

function byTenantAndName<T extends { tenant: string; name: string }>(values: T[]): T[] {
  return values.sort((left, right) => compare(left.tenant, right.tenant) || compare(left.name, right.name));
}

function secretMetadata({ ciphertext: _ciphertext, nonce: _nonce, ...metadata }: Secret): SecretMetadata {
  return metadata;
}

function copy<T>(value: T): T {
  return structuredClone(value);
}

function copyOrUndefined<T>(value: T | undefined): T | undefined {
  return value === undefined ? undefined : structuredClone(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value) || ArrayBuffer.isView(value)) return value;
  for (const inner of Object.values(value)) deepFreeze(inner);
  return Object.freeze(value);
}
