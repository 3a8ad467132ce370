/**
 * The snapshot format of the cluster state: msgpack of plain data, with every
 * map stored as a list of its values (or entries) in iteration order, so a
 * restored state iterates, and therefore applies later commands and encodes
 * later snapshots, exactly as the original does.
 *
 * A snapshot is written by this node or a peer running the same code; a
 * snapshot that does not decode to this shape is a broken invariant (a
 * corrupt disk or a version skew), and restore asserts.
 */
import { Packr } from 'msgpackr';
import { assert, AssertionError } from '../../consensus/core/assert.js';
import { emptyState, tenantKey, type ClusterState } from './state.js';
import type { App, CaRecord, ClusterNetwork, CommandResult, HistoryEntry, Instance, KvEntry, NetworkPolicy, NodeRecord, Secret, Tenant, TenantNetwork, TokenRecord, Volume, ApiTokenRecord } from './types.js';

/**
 * Bumped on any change to `SnapshotData`; restore refuses other formats but
 * the ones in READABLE_SNAPSHOT_FORMATS (a snapshot of format 1 has no CA).
 */
export const SNAPSHOT_FORMAT = 2;
const READABLE_SNAPSHOT_FORMATS: ReadonlySet<number> = new Set([1, 2]);

/** What a snapshot holds. */
interface SnapshotData {
  format: number;
  appliedIndex: number;
  tenants: Tenant[];
  apps: App[];
  instances: Instance[];
  nodes: NodeRecord[];
  policies: NetworkPolicy[];
  volumes: Volume[];
  secrets: Secret[];
  kv: KvEntry[];
  history: HistoryEntry[];
  requests: [string, CommandResult][];
  token: TokenRecord | null;
  /** Absent in snapshots written before API tokens, and while there are none. */
  apiTokens?: ApiTokenRecord[];
  /** From format 2. */
  ca?: CaRecord | null;
  /** Absent while no tenant but `default` was ever created (and in snapshots written before tenant user ids). */
  tenantUidOffsetLast?: number;
  /** Absent in snapshots written before the cluster network existed, and until it is configured. */
  network?: ClusterNetwork;
  /** Absent until the first `cluster.version` (and in snapshots written before it existed). */
  clusterVersion?: number;
  /** Tenant networks; absent while there are none (and in snapshots written before them). */
  networks?: TenantNetwork[];
}

// Records (msgpackr's shared structures) are off: the bytes must depend on the data only.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Encodes `state`. The bytes are a fresh copy owned by the caller; equal states give equal bytes. */
export function encodeState(state: ClusterState): Uint8Array {
  const data: SnapshotData = {
    format: SNAPSHOT_FORMAT,
    appliedIndex: state.appliedIndex,
    tenants: [...state.tenants.values()],
    apps: [...state.apps.values()],
    instances: [...state.instances.values()],
    nodes: [...state.nodes.values()],
    policies: [...state.policies.values()],
    volumes: [...state.volumes.values()],
    secrets: [...state.secrets.values()],
    kv: [...state.kv.values()],
    history: state.history,
    requests: [...state.requests.entries()],
    token: state.token ?? null,
    ca: state.ca ?? null,
    // Left out while unset, so a state without a network encodes as before.
    ...(state.network !== undefined ? { network: state.network } : {}),
    ...(state.apiTokens.size > 0 ? { apiTokens: [...state.apiTokens.values()] } : {}),
    ...(state.tenantUidOffsetLast > 0 ? { tenantUidOffsetLast: state.tenantUidOffsetLast } : {}),
    ...(state.clusterVersion !== undefined ? { clusterVersion: state.clusterVersion } : {}),
    ...(state.networks.size > 0 ? { networks: [...state.networks.values()] } : {}),
  };
  // pack returns a view of msgpackr's reused buffer: copy it out.
  return new Uint8Array(packr.pack(data));
}

/** Decodes a snapshot made by `encodeState`. Asserts on anything else. */
export function decodeState(bytes: Uint8Array): ClusterState {
  assert(bytes instanceof Uint8Array && bytes.length > 0, 'a state snapshot must be non-empty bytes');
  let data: SnapshotData;
  try {
    data = packr.unpack(bytes) as SnapshotData;
  } catch (error) {
    throw new AssertionError(`a state snapshot does not decode: ${String(error)}`);
  }
  assert(typeof data === 'object' && data !== null && READABLE_SNAPSHOT_FORMATS.has(data.format), `unknown state snapshot format ${String((data as { format?: unknown })?.format)}`);
  const state = emptyState();
  state.appliedIndex = data.appliedIndex;
  for (const tenant of data.tenants) state.tenants.set(tenant.name, tenant);
  for (const app of data.apps) state.apps.set(tenantKey(app.tenant, app.name), app);
  for (const instance of data.instances) state.instances.set(instance.id, instance);
  for (const node of data.nodes) state.nodes.set(node.id, node);
  for (const policy of data.policies) state.policies.set(tenantKey(policy.tenant, policy.name), policy);
  for (const volume of data.volumes) state.volumes.set(tenantKey(volume.tenant, volume.name), volume);
  for (const secret of data.secrets) state.secrets.set(tenantKey(secret.tenant, secret.name), plainSecret(secret));
  for (const entry of data.kv) state.kv.set(entry.key, entry);
  state.history = data.history;
  for (const [requestId, result] of data.requests) state.requests.set(requestId, result);
  state.token = data.token === null ? undefined : { ...data.token, sealed: plain(data.token.sealed), nonce: plain(data.token.nonce) };
  state.ca = data.ca === undefined || data.ca === null ? undefined : { ...data.ca, keySealed: plain(data.ca.keySealed), keyNonce: plain(data.ca.keyNonce) };
  state.network = data.network ?? undefined;
  for (const network of data.networks ?? []) state.networks.set(tenantKey(network.tenant, network.name), network);
  for (const record of data.apiTokens ?? []) state.apiTokens.set(record.id, record);
  state.tenantUidOffsetLast = data.tenantUidOffsetLast ?? 0;
  state.clusterVersion = data.clusterVersion;
  assert(state.clusterVersion === undefined || (Number.isSafeInteger(state.clusterVersion) && state.clusterVersion >= 1), 'a state snapshot carries a whole clusterVersion');
  assert(Number.isSafeInteger(state.tenantUidOffsetLast) && state.tenantUidOffsetLast >= 0, 'a state snapshot carries a whole tenantUidOffsetLast');
  assert(Number.isSafeInteger(state.appliedIndex) && state.appliedIndex >= 0, 'a state snapshot must carry its applied index');
  return state;
}

/** The decoder gives Buffers; the state holds plain Uint8Arrays, as apply stores them. */
function plain(bytes: Uint8Array): Uint8Array {
  assert(bytes instanceof Uint8Array, 'a state snapshot holds bytes where bytes belong');
  return new Uint8Array(bytes);
}

function plainSecret(secret: Secret): Secret {
  return { ...secret, ciphertext: plain(secret.ciphertext), nonce: plain(secret.nonce) };
}
