/**
 * The replicated cluster state: its entities and the commands that change it.
 *
 * Everything here is plain data, encoded with msgpackr into Raft entries and
 * snapshots. Applying a command is deterministic: it reads nothing but the
 * state and the command (the proposer stamps `time` and `requestId`).
 */

/** Names of tenants, apps, volumes, secrets, policies: DNS labels. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The tenant that owns anything deployed without `x-hivemind.tenant`. */
export const DEFAULT_TENANT = 'default';

/** Resource amounts. CPU in thousandths of a core, memory and storage in bytes. */
export interface Resources {
  cpuMillis?: number;
  memoryBytes?: number;
}

/** A tenant's limits; an absent field means unlimited. */
export interface Quota {
  cpuMillis?: number;
  memoryBytes?: number;
  instances?: number;
  apps?: number;
  volumes?: number;
  storageBytes?: number;
}

/**
 * What a cluster-admin allows a tenant's apps on the nodes beyond the
 * default confinement. Absent fields are false: by default a tenant's process
 * apps run as the tenant's own unprivileged user and no app binds host paths.
 */
export interface TenantSettings {
  /**
   * Process apps may run as the agent's own user (root) or as any host user
   * their `user:` names, and image apps as user 0 (root). Without it a
   * process app always runs as the tenant's user and `user:` is refused.
   */
  hostUsers?: boolean;
  /** Apps may bind host paths (`/srv/data:/data`); without it only named volumes. */
  hostMounts?: boolean;
  /**
   * Every volume of the tenant is encrypted at rest (gocryptfs over its
   * filesystem, see VolumeEncryption): `volume.create` without a key is
   * refused. Volumes created before it was set stay as they are.
   */
  encryptVolumes?: boolean;
  /** Capabilities (`CAP_` names) apps may add beyond the default set with `cap_add`; absent: none. */
  capabilities?: string[];
}

export interface Tenant {
  name: string;
  quota: Quota;
  createdIndex: number;
  createdAt: number;
  /** Absent: nothing beyond the default confinement (see TenantSettings). */
  settings?: TenantSettings;
  /**
   * The tenant's place in each node's range of tenant user ids: its process
   * apps run as uid (and gid) `base + uidOffset`. 0 for `default`; each
   * tenant.create takes the next one and none is used twice, even after a
   * delete (files a deleted tenant left must not pass to a new one).
   * Absent only in records from before it existed.
   */
  uidOffset?: number;
}

export interface PortSpec {
  /** Port inside the instance. */
  target: number;
  /** Port published on the node, if any. */
  published?: number;
  protocol: 'tcp' | 'udp';
}

/** Compose's healthcheck, in milliseconds. `test` is Compose's form: ["CMD", ...], ["CMD-SHELL", "..."], or ["NONE"]. */
export interface HealthcheckSpec {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface VolumeMount {
  /** A named volume of the tenant, or an absolute host path. */
  source: string;
  target: string;
  readOnly: boolean;
}

export interface UpdateSpec {
  parallelism: number;
  delayMs: number;
  failureAction: 'pause' | 'rollback' | 'continue';
  order: 'stop-first' | 'start-first';
  /** How long an updated instance must stay healthy to count (Compose's `monitor`). */
  monitorMs: number;
}

export interface RestartSpec {
  condition: 'none' | 'on-failure' | 'any';
  delayMs: number;
  /** Absent: unlimited. */
  maxAttempts?: number;
  windowMs: number;
}

/** Hivemind's own keys, under `x-hivemind` in the app file. */
export interface HivemindSpec {
  /** Canary: how many instances of a new version run beside the old, or a traffic weight in percent. */
  canary?: { instances?: number; weightPercent?: number };
  strategy?: 'rolling' | 'blue-green' | 'canary';
  priority?: number;
  /** Names of network policies that apply to this app. */
  policies?: string[];
  /** Names of secrets mounted into the instances under /run/secrets/NAME. */
  secrets?: string[];
  maxPerNode?: number;
  /** Extra host names (and path prefixes) the proxy routes to this app, beside `<app>.<tenant>.hivemind`. */
  routes?: RouteSpec[];
  /** How the proxy balances and protects this app's traffic; absent keys take the proxy's defaults. */
  proxy?: ProxySpec;
  /**
   * More DNS names of this app in its tenant (Compose's network `aliases`):
   * `<alias>.<tenant>.hivemind`, and the bare alias through the search
   * domain, seen by every querier that sees the tenant. Absent: none.
   */
  aliases?: string[];
  /**
   * Compose's `links` (`service:alias`): names that this app's own instances
   * resolve to another app of the tenant; other queriers do not see them.
   * Absent: none.
   */
  links?: LinkSpec[];
}

/** One Compose link: `alias` names `app` (of the same tenant) for the linking app's instances. */
export interface LinkSpec {
  app: string;
  alias: string;
}

/** A host name the proxy routes to an app, optionally only under a path prefix (`/api`). */
export interface RouteSpec {
  /** Lower case, without a port. */
  host: string;
  /** A path prefix starting with `/`; absent: every path. */
  path?: string;
}

/** How the proxy picks an instance for a request. */
export type ProxyBalance = 'round-robin' | 'least-request' | 'weighted' | 'hash';

/** An app's proxy settings (`x-hivemind.proxy`); the proxy's defaults fill in what is absent. */
export interface ProxySpec {
  balance?: ProxyBalance;
  /** balance "hash": the request header (lower case) whose value picks the instance. */
  hashHeader?: string;
  /** balance "hash": the cookie whose value picks the instance. */
  hashCookie?: string;
  /**
   * The A/B rule: during a rollout, requests with this header (lower case)
   * go to the version this spec belongs to; the others follow the split.
   */
  abHeader?: string;
  /** The A/B rule on a cookie instead of a header. */
  abCookie?: string;
  /** The A/B rule's value the header or cookie must have; absent: any value, present and not empty. */
  abValue?: string;
  /** The whole request, from the first attempt to the last response byte of the headers. */
  timeoutMs?: number;
  /** Opening a connection to an instance. */
  connectTimeoutMs?: number;
  /** Retries of an idempotent request after a failed attempt (0: none). */
  retries?: number;
  /** Retries allowed as a percent of requests (the retry budget). */
  retryBudgetPercent?: number;
  /** Consecutive failures of one instance that open its circuit breaker. */
  breakerFailures?: number;
  /** How long an open breaker stays open before it lets a probe through. */
  breakerOpenMs?: number;
  /** Consecutive 5xx responses of one instance that eject it from the balance for a while. */
  outlierFailures?: number;
  /** The first ejection's length; each further ejection of the same instance is longer. */
  outlierEjectionMs?: number;
  /** Requests in flight to the app through one node's proxy at most (the bulkhead); beyond, 503. */
  maxConcurrent?: number;
}

/** One app, normalized from one Compose service. Exactly one of `image` and `command` is set. */
export interface AppSpec {
  name: string;
  tenant: string;
  image?: string;
  /** For process apps (no image): argv. With an image: overrides the image's command. */
  command?: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
  readOnly: boolean;
  replicas: number;
  environment: Record<string, string>;
  ports: PortSpec[];
  healthcheck?: HealthcheckSpec;
  volumes: VolumeMount[];
  limits: Resources;
  reservations: Resources;
  update: UpdateSpec;
  restart: RestartSpec;
  /** How long a stopping instance gets after `stopSignal` before it is killed (Compose's `stop_grace_period`; default 10 s). */
  stopGraceMs?: number;
  /** The signal that asks an instance to stop (Compose's `stop_signal`; default SIGTERM). */
  stopSignal?: string;
  /** Placement constraints as written: `node.labels.zone == a`, `node.hostname != n2`. */
  constraints: string[];
  labels: Record<string, string>;
  hivemind: HivemindSpec;
  /** Compose's settings of the instance's own environment (hostname, init, tmpfs, ulimits, capabilities, extra hosts); absent: the defaults. */
  container?: ContainerSettings;
  /**
   * Files mounted read-only in each instance (Compose's `configs`, and
   * relative bind mounts the CLI read): carried in the spec, so every node
   * has them, within LIMITS.configBytesMax per app. Absent: none.
   */
  configs?: ConfigMount[];
  /**
   * The tenant networks its instances join, in order (Compose's service
   * `networks:`): the first gives `eth0` and the default route, the next
   * `eth1`, and so on. Absent: the tenant's `default` alone. Each must exist
   * in the tenant (or be created by the same `app.deploy-many`). From state
   * version APP_NETWORKS_VERSION.
   */
  networks?: string[];
}

/** A config mounted in an instance: one file at `target`, or a folder's files under it. */
export interface ConfigMount {
  /** The config's name (top-level `configs:`), or the relative path a bind mount named (`./nginx.conf`), for messages. */
  source: string;
  /** An absolute path inside the instance. */
  target: string;
  /** A file: one entry with `path` ''. A folder: its files by relative path (`site.crt`, `sub/a.pem`). */
  files: ConfigFileSpec[];
  /** The files' mode (0o444 when absent). */
  mode?: number;
}

/** One file of a config, its bytes in base64. */
export interface ConfigFileSpec {
  path: string;
  data: string;
}

/**
 * Compose's per-instance settings: `hostname`, `init`, `tmpfs`, `ulimits`,
 * `cap_add`/`cap_drop` and `extra_hosts`. Each absent field keeps the
 * default. Process apps take `ulimits` only (the appfile refuses the rest for them).
 */
export interface ContainerSettings {
  /** The instance's hostname; absent: its instance id. */
  hostname?: string;
  /** Run a small reaper (tini) as PID 1 in front of the command. */
  init?: boolean;
  /** Memory-backed folders mounted in the instance. */
  tmpfs?: TmpfsSpec[];
  /** Resource limits of the process (setrlimit), by Compose's name (`nofile`, `nproc`, ...). */
  ulimits?: UlimitSpec[];
  /** Capabilities added to the default set, `CAP_` names (within what the tenant allows). */
  capAdd?: string[];
  /** Capabilities taken from the default set, `CAP_` names, or `ALL`. */
  capDrop?: string[];
  /** More /etc/hosts lines (Compose's `extra_hosts`). */
  extraHosts?: ExtraHostSpec[];
}

/** One tmpfs mount; `sizeBytes` absent: the kernel's default (half the memory, bounded by the memory limit). */
export interface TmpfsSpec {
  target: string;
  sizeBytes?: number;
  /** File mode of the mount's root, as a number (0o1777). */
  mode?: number;
}

/** One resource limit; soft <= hard. */
export interface UlimitSpec {
  /** Compose's name: nofile, nproc, core, memlock, stack, ... */
  name: string;
  soft: number;
  hard: number;
}

/** One extra /etc/hosts line: `address host`. */
export interface ExtraHostSpec {
  host: string;
  /** An IPv4 or IPv6 address, or `host-gateway`: the node as its containers reach it. */
  address: string;
}

export interface AppVersion {
  version: number;
  spec: AppSpec;
  deployedIndex: number;
  deployedAt: number;
}

/** How an update replaces one version's instances with another's. */
export type RolloutStrategy = 'rolling' | 'blue-green' | 'canary';

/**
 * Where a rollout is. `running` and `paused` and `awaiting-promotion` are
 * active (the scheduler steps a running one); the others are final and stay
 * on the app, for `hivemind app`, until the next rollout replaces the record.
 */
export type RolloutState = 'running' | 'paused' | 'awaiting-promotion' | 'succeeded' | 'rolled-back' | 'superseded';

/**
 * One update of an app from `fromVersion` to `toVersion`, stepped by the
 * leader's scheduler through `rollout.step` commands, so a new leader
 * continues it. A rollback (automatic, or `app.abort`) is a rollout of kind
 * 'rollback' whose `toVersion` is the version restored.
 */
export interface Rollout {
  /** The Raft index of the command that started it: `rollout.step` names it, so a step planned for an older rollout is refused. */
  id: number;
  kind: 'update' | 'rollback';
  strategy: RolloutStrategy;
  fromVersion: number;
  toVersion: number;
  state: RolloutState;
  /** Why it is in its state: "waiting for 2 instances to be healthy", "paused: instance ... failed". */
  message: string;
  startedAt: number;
  updatedAt: number;
  /** Slots of the batch in flight (rolling); empty between batches. */
  batch: number[];
  /** When the batch in flight started (the progress deadline counts from it). */
  batchStartedAt?: number;
  /** No new batch before this time (update_config delay). */
  nextBatchAt?: number;
  /** Slots whose new-version instance is ready, of `total`. */
  done: number;
  total: number;
  /** Canary: new-version instances beside the old, and the traffic weights in percent by version (the proxy routes by them). */
  canaryInstances?: number;
  weights?: { version: number; percent: number }[];
}

/** Why some of an app's instances cannot be placed, as the scheduler last found it. */
export interface UnplaceableRecord {
  count: number;
  /** Per node class: "3 nodes: not enough memory (...)". */
  reasons: string[];
  updatedAt: number;
}

export interface App {
  tenant: string;
  name: string;
  /** The version instances should run (the rollout's target); versions start at 1. A rollback moves it back to an earlier number. */
  version: number;
  /** Desired instance count now (scale changes it without a new version). */
  replicas: number;
  /** Newest last, at most APP_VERSIONS_MAX kept. */
  versions: AppVersion[];
  createdIndex: number;
  updatedIndex: number;
  /** The serial of the app's newest instance record; instance ids end with it. Absent: none made yet. */
  instanceSerial?: number;
  /** The current or last rollout; absent before the first update. */
  rollout?: Rollout;
  /** Set while some instance of the app cannot be placed. */
  unplaceable?: UnplaceableRecord;
  /**
   * Set by `hivemind rebalance` until the app's instances are spread evenly.
   * `moveStartedAt`: when the latest move's copy was added (the proposer's
   * clock, ms); absent before the first move, and in states written before
   * it existed.
   */
  rebalance?: { requestedAt: number; moves: number; moveStartedAt?: number };
  /**
   * The app's service VIP, from the cluster's service CIDR (`vip.ts`): given
   * by the first deploy with ports once the service CIDR is configured (or by
   * the `network.configure` that configures it), kept until the app is
   * deleted. No two apps hold one. Absent: none (no ports, no service CIDR,
   * the range full, or a state written before VIPs).
   */
  vip?: string;
  /**
   * The Compose project whose file deployed it (top-level `name:`, `-p`, or
   * the file's folder): a deploy of another project does not take it over
   * without `force`. Absent: deployed without a project (before projects, or
   * by `app.deploy`); the next project to deploy it adopts it.
   */
  project?: string;
}

export const APP_VERSIONS_MAX = 20;

export type InstanceState =
  | 'pending'
  | 'starting'
  | 'running'
  | 'healthy'
  | 'unhealthy'
  | 'exited'
  | 'oom-killed'
  | 'failed'
  | 'stopped';

export interface InstanceStatus {
  state: InstanceState;
  exitCode?: number;
  message?: string;
  /** Which node reported it, and when (the reporter's clock, in ms). */
  reportedBy?: string;
  reportedAt: number;
  updatedIndex: number;
  /** When the instance entered `state` (the proposer's clock, ms); a repeated report of the same state keeps it. */
  since?: number;
  /**
   * Where the instance is reachable, as its node last reported it while it
   * ran; absent when the report carried none (not running, or a report from
   * before endpoints existed). Each report replaces it.
   */
  endpoint?: InstanceEndpoint;
}

/** One of an instance's ports: the app's `target` port, reachable at `port` on the endpoint's address. */
export interface EndpointPort {
  target: number;
  port: number;
  protocol: 'tcp' | 'udp';
}

/**
 * Where a running instance is reachable: an IP address (the node's for a
 * process app, which gets host ports of its own; the container's on its
 * network for an image app, with port = target) and its ports.
 */
export interface InstanceEndpoint {
  /** The address on its first network (eth0). */
  address: string;
  ports: EndpointPort[];
  /**
   * Every address of an instance on more than one network, in the order of
   * its networks (the first is `address`); absent for one network. Which
   * network an address is on is the network whose block holds it. From
   * state version APP_NETWORKS_VERSION.
   */
  addresses?: string[];
}

/**
 * One copy of an app. `node` is set by the scheduler's placement. Ids are
 * `${tenant}.${app}.${slot}.${serial}`: an old and a new copy of one slot
 * coexist during a start-first update, blue-green, canary and rebalance.
 * `desired: 'stopped'` means retired: the executor stops it, and the
 * scheduler removes the record once it has stopped.
 */
export interface Instance {
  id: string;
  tenant: string;
  app: string;
  version: number;
  /** Stable slot number within the app: 0..replicas-1. */
  slot: number;
  node?: string;
  desired: 'running' | 'stopped';
  status: InstanceStatus;
  createdIndex: number;
  /** When it was retired (desired became 'stopped'), and why. */
  retiredAt?: number;
  retiredReason?: string;
  /** How many times it was rescheduled after failing; absent: never. */
  attempt?: number;
  /** Backoff: not placed before this time (ms, the leader's clock). */
  notBefore?: number;
  /** The node it last failed on: placed elsewhere when another node fits. */
  avoidNode?: string;
  /**
   * How many times it was reported unhealthy, exited, oom-killed or failed
   * (each change into one of those states counts once). The executor
   * restarts an instance in place, so a rollout reads its failures here.
   */
  failures?: number;
  /**
   * Why it last failed, in its executor's words (one line, at most
   * FAILURE_MESSAGE_CHARS_MAX characters), and on which node: set when the
   * scheduler reschedules it after a failure (state version 4), kept while
   * it waits and is placed again, cleared once it runs. Absent: it has not
   * failed since it last ran.
   */
  lastFailure?: { message: string; node?: string };
}

/** The longest failure message an instance record keeps (`Instance.lastFailure`); the executor's longer text is cut. */
export const FAILURE_MESSAGE_CHARS_MAX = 300;

export type NodeStatus = 'up' | 'suspect' | 'down' | 'left';

export interface NodeAddresses {
  api: string;
  peer: string;
  gossip: string;
}

export interface NodeRecord {
  id: string;
  addresses: NodeAddresses;
  labels: Record<string, string>;
  resources: Resources;
  status: NodeStatus;
  /** Raft role as last recorded by the leader. */
  role: 'voter' | 'learner' | 'none';
  /**
   * Index of the registration that began the node's current membership: its
   * first, or its first after it left. A `left` status belongs to this
   * membership; a node that joined again under the same name ignores one
   * with a smaller index (an earlier membership's).
   */
  joinedIndex: number;
  /** Last heartbeat the node sent through the API (its leader-stamped time, ms). */
  lastSeenAt: number;
  /** When `status` last changed (the proposer's clock, ms); the reschedule grace counts from it. */
  statusSince?: number;
  updatedIndex: number;
  /**
   * The node certificates issued to it, newest last, at most
   * NODE_CERTIFICATES_MAX; revoked when the node leaves or is removed.
   * Absent in records written before certificates existed.
   */
  certificates?: CertificateRecord[];
  /**
   * The node's overlay subnet (`10.210.3.0/24`), from the cluster network
   * (`ipam.ts`): set when the node registers, or by `network.configure` for
   * nodes registered before the network was; removed when it leaves.
   */
  subnet?: string;
  /**
   * The ports its host listens on that no instance of the cluster holds,
   * and Hivemind's own (API, peer, gossip, DNS, proxy), as the node last
   * reported them (`node.ports`, state version 4): placement never
   * publishes one of them there. Absent: not reported yet (the API, peer and
   * gossip ports of `addresses` are reserved all the same).
   */
  hostPorts?: HostPorts;
}

/** Ports by protocol, each list sorted, unique, at most HOST_PORTS_MAX long. */
export interface HostPorts {
  tcp: number[];
  udp: number[];
}

/** The most ports of one protocol a node reports (own ports first, then the lowest). */
export const HOST_PORTS_MAX = 1024;

/** One issued certificate, by serial (upper-case hex) and expiry (ms since the epoch). */
export interface CertificateRecord {
  serial: string;
  notAfter: number;
  /** SHA-256 (hex) of the CA certificate that signed it: a CA rotation ends once every live node holds one of the new CA's. */
  issuer?: string;
}

export const NODE_CERTIFICATES_MAX = 4;
export const REVOKED_CERTIFICATES_MAX = 10_000;

/**
 * The cluster's certificate authority. `certificates` are the CA certificates
 * every node trusts (PEM), the signing one first; during a rotation the old
 * one stays trusted beside it. The signing key is sealed under the cluster
 * key (AES-256-GCM), so any member can sign and no one without the key can.
 */
export interface CaRecord {
  certificates: string[];
  keySealed: Uint8Array;
  keyNonce: Uint8Array;
  setIndex: number;
  /** Certificates of nodes that left or were removed, refused until they expire; oldest first, at most REVOKED_CERTIFICATES_MAX. */
  revoked: (CertificateRecord & { node: string })[];
}

/** The cluster network, fixed by the first `network.configure`: the CIDR cut into one subnet per node. */
export interface ClusterNetwork {
  cidr: string;
  nodePrefixLength: number;
  configuredIndex: number;
  /** The range apps' service VIPs come from (`10.211.0.0/16`), set once by the first configure that carries one; absent before (and in states written before VIPs). */
  serviceCidr?: string;
  /** The pool tenant networks' blocks come from (`10.224.0.0/12`, tenant-ipam.ts), set once by the first configure that carries one (state version 5); absent before. */
  tenantCidr?: string;
}

/**
 * A tenant network (state version 5): a block of the tenant pool that
 * belongs to it alone, cut into one slice per node that runs an instance of
 * it. Keyed `tenant/name` in `ClusterState.networks`; every tenant created
 * once the pool is set gets `default`.
 */
export interface TenantNetwork {
  tenant: string;
  name: string;
  /** A /NETWORK_PREFIX_LENGTH of the pool; no other network overlaps it. */
  cidr: string;
  createdIndex: number;
  /** The nodes holding a slice (a /SLICE_PREFIX_LENGTH of `cidr`), in the order they got it; one per node, no two alike. */
  slices: { node: string; cidr: string }[];
}

/**
 * A network an app file declares (top-level `networks:`), made by the
 * `app.deploy-many` that carries it when its tenant lacks it: `cidr` a block
 * of the pool as `network.create` takes it, absent the lowest free one. One
 * that exists is left as it is (a `cidr` other than its own is refused).
 */
export interface DeployNetwork {
  tenant: string;
  name: string;
  cidr?: string;
}

/**
 * One ingress rule of a network policy: traffic from any of its sources, to
 * any of `ports` (TCP or UDP; absent or empty: every port and protocol).
 * A rule with no source allows nothing.
 */
export interface PolicyRule {
  /** Allowed sources: apps of this tenant by name, or whole tenants. */
  fromApps?: string[];
  fromTenants?: string[];
  /** Allowed source addresses: IPv4 CIDRs (`10.0.0.0/8`, `0.0.0.0/0`), inside the cluster network or outside it. */
  fromCidrs?: string[];
  ports?: number[];
}

/**
 * One egress rule of a network policy: traffic to any of its destinations,
 * on any of `ports` (the destination port, TCP or UDP; absent or empty:
 * every port and protocol). A rule with no destination allows nothing.
 */
export interface EgressRule {
  /** Allowed destinations: apps of this tenant by name, or whole tenants (their instances' addresses, also reached through a VIP or a published port). */
  toApps?: string[];
  toTenants?: string[];
  /** Allowed destination addresses: IPv4 CIDRs (`0.0.0.0/0` for anywhere), inside the cluster network or outside it. */
  toCidrs?: string[];
  ports?: number[];
}

export interface NetworkPolicy {
  tenant: string;
  name: string;
  /** Apps the policy protects (all the tenant's apps when empty). */
  apps: string[];
  /** What its apps accept. A policy with `egress` and no ingress rule leaves its apps' ingress alone. */
  ingress: PolicyRule[];
  /** When present, its apps may open connections only where one of these rules (of any policy selecting them that has `egress`) allows; empty: nowhere. Absent: egress untouched (and in states written before egress). */
  egress?: EgressRule[];
  createdIndex: number;
  updatedIndex: number;
}

/**
 * I/O limits of a volume, enforced by the kernel (cgroup `io.max` on the
 * volume's loop device) for each workload that mounts it. Absent: no limit.
 */
export interface VolumeIoLimits {
  readBytesPerSecond?: number;
  writeBytesPerSecond?: number;
  readIops?: number;
  writeIops?: number;
}

/**
 * A named volume of a tenant. A volume is node-local: its data lives on the
 * node it is bound to (`node`), set by `volume.bind` when an instance first
 * mounts it there; absent until then (and in states written before binding).
 */
export interface Volume {
  tenant: string;
  name: string;
  sizeBytes: number;
  createdIndex: number;
  /** The node that holds the volume's data; absent while no instance has used it. */
  node?: string;
  /**
   * The bytes its backing file really takes on disk (allocated blocks, not
   * the sparse size), as its node last reported (`volume.report`); absent
   * until then. The storage quota counts this.
   */
  usedBytes?: number;
  /** While a `volumes move` copies the data: the node it goes to. No instance that mounts it is placed meanwhile. */
  moving?: string;
  /** Its I/O limits; absent: none. */
  io?: VolumeIoLimits;
  /** Its key when it is encrypted at rest; absent: plain. */
  encryption?: VolumeEncryption;
}

/**
 * A volume's encryption at rest: a random 32-byte key, sealed under the
 * cluster key (AES-256-GCM, bound to `volumeKeyAssociatedData`). The API seals
 * it before proposing, so only ciphertext enters the log; the volume's node
 * opens it to mount the volume through gocryptfs, and a copy of the backing
 * file or of the disk shows none of the data written to it.
 */
/** The length of a volume's key in bytes, before sealing. */
export const VOLUME_KEY_BYTES = 32;

export interface VolumeEncryption {
  ciphertext: Uint8Array;
  nonce: Uint8Array;
}

/** A secret: its value only as AES-256-GCM ciphertext under the cluster key. */
export interface Secret {
  tenant: string;
  name: string;
  version: number;
  ciphertext: Uint8Array;
  nonce: Uint8Array;
  createdIndex: number;
  updatedIndex: number;
}

/** One key of the config store. `version` is the Raft index that last wrote it (Consul's ModifyIndex). */
export interface KvEntry {
  key: string;
  value: string;
  version: number;
  createIndex: number;
}

export interface HistoryEntry {
  index: number;
  time: number;
  actor: string;
  command: string;
  target: string;
  summary: string;
}

export const HISTORY_MAX = 1000;
export const REQUESTS_REMEMBERED_MAX = 10_000;

/** The join token, never in clear: its hash to check, and its value sealed under the cluster key. */
export interface TokenRecord {
  hash: string;
  sealed: Uint8Array;
  nonce: Uint8Array;
  rotatedIndex: number;
}

/** What an API token may do (docs/user-guide.md, Access). */
export type ApiRole = 'cluster-admin' | 'tenant-admin' | 'deployer' | 'viewer';

/** The roles, most powerful first. */
export const API_ROLES: readonly ApiRole[] = ['cluster-admin', 'tenant-admin', 'deployer', 'viewer'];

/** The tenant list that means every tenant (cluster-wide). */
export const ALL_TENANTS = '*';

/**
 * An API token, never in clear: the SHA-256 of the token (`hashToken`) to
 * check a bearer against. `tenants` is where the role applies (`['*']`: every
 * tenant, always so for `cluster-admin`). `expiresAt` (ms since the epoch):
 * refused from then on.
 */
export interface ApiTokenRecord {
  id: string;
  name: string;
  role: ApiRole;
  tenants: string[];
  hash: string;
  expiresAt?: number;
  createdIndex: number;
  createdAt: number;
  /** Who created it (the actor of the command). */
  createdBy: string;
}

// -----------------------------------------------------------------------------
// Commands

export type Command =
  | { type: 'tenant.create'; name: string; quota: Quota; settings?: TenantSettings }
  /** `settings` absent: unchanged. */
  | { type: 'tenant.update'; name: string; quota: Quota; settings?: TenantSettings }
  | { type: 'tenant.delete'; name: string }
  | { type: 'app.deploy'; spec: AppSpec }
  /**
   * Deploys every app of one app file, all or none: one refusal refuses them all.
   * With `project` (the Compose project the file belongs to): an app of another
   * project is refused unless `force`, and an app whose spec and replicas are
   * those of the file already is left as it is (no new version, no restart).
   */
  | { type: 'app.deploy-many'; specs: AppSpec[]; project?: string; force?: boolean; networks?: DeployNetwork[] }
  | { type: 'app.scale'; tenant: string; name: string; replicas: number }
  | { type: 'app.rollback'; tenant: string; name: string; toVersion?: number }
  | { type: 'app.delete'; tenant: string; name: string }
  | { type: 'instance.place'; placements: { id: string; node: string | null }[] }
  | {
      type: 'instance.status';
      /** `version`, when given, must be the instance's current version, else the update is ignored (a late report of a replaced version). */
      updates: {
        id: string;
        state: InstanceState;
        exitCode?: number;
        message?: string;
        reportedBy: string;
        reportedAt: number;
        version?: number;
        /** Where the instance is reachable while it runs; see InstanceStatus.endpoint. */
        endpoint?: InstanceEndpoint;
      }[];
    }
  /** A step of the app's rollout, rebalance or scale, planned by the scheduler. See apply-rollouts.ts. */
  | {
      type: 'rollout.step';
      tenant: string;
      name: string;
      /** The rollout the step was planned for (its id); 0 when it needs none. Refused when another rollout is current. */
      rollout: number;
      add: { slot: number; version: number; node?: string }[];
      /**
       * Instances to retire. `keeper` (state version 4): the instance that
       * replaces this one in its slot; the step is refused (`conflict`, plan
       * again) unless the keeper still serves when the step applies, by the
       * readiness rule (readiness.ts). Absent: retired regardless (stop-first,
       * a rebalance's copy, and every step before version 4).
       * `unlessServing` (state version 5): the instance was planned out because
       * it did not serve (an earlier version's surplus, unavailable); the step
       * is refused (`conflict`, plan again) if it serves when the step applies.
       */
      retire: { id: string; reason: string; keeper?: string; unlessServing?: boolean }[];
      /** Changes to the rollout record. */
      set?: RolloutPatch;
      /** Ends the rollout in failure and starts a rollback to its `fromVersion`, saying why. */
      rollbackBecause?: string;
      /** The rebalance made one more move (`true`), or is finished (`'done'`). */
      rebalance?: 'moved' | 'done';
    }
  /** Sets and removes labels of a node (an operator's `hivemind nodes label`); Hivemind's own (`hivemind.*`) and the agent's `--label` keys are refused. */
  | { type: 'node.label'; id: string; set: Record<string, string>; remove: string[] }
  /** The ports a node's host listens on (NodeRecord.hostPorts); from the node itself, when they changed. */
  | { type: 'node.ports'; id: string; tcp: number[]; udp: number[] }
  /** Puts instances that failed back to be placed later, elsewhere (backoff). */
  | { type: 'instance.reschedule'; updates: { id: string; notBefore: number; avoidNode?: string; /** The failure's cause (state version 4). */ reason?: string }[] }
  /** Removes retired instances (desired 'stopped') once they stopped. */
  | { type: 'instance.remove'; ids: string[] }
  /** Makes room for `id` on `node` by unplacing lower-priority instances; recorded in history with the reasons. */
  | { type: 'instance.preempt'; id: string; node: string; evictions: { id: string; reason: string }[] }
  /** The scheduler's view of what it cannot place, per app (count 0 clears). */
  | { type: 'app.unplaceable'; updates: { tenant: string; name: string; count: number; reasons: string[] }[] }
  /** Blue-green and canary: switch to the new version; a paused rolling update: resume. */
  | { type: 'app.promote'; tenant: string; name: string }
  /** Stops the active rollout and restores the version it started from. */
  | { type: 'app.abort'; tenant: string; name: string }
  /** Asks the scheduler to even out the app's instances over nodes (every app of the tenant without `name`; every app without `tenant`). */
  | { type: 'app.rebalance'; tenant?: string; name?: string }
  /** `certificate`: the node certificate the leader issued with the registration (absent when none was issued). */
  | { type: 'node.register'; id: string; addresses: NodeAddresses; labels: Record<string, string>; resources: Resources; certificate?: CertificateRecord }
  /** Records a certificate a node renewed for itself. */
  | { type: 'node.certificate'; id: string; certificate: CertificateRecord }
  | { type: 'node.status'; id: string; status: NodeStatus }
  | { type: 'node.role'; id: string; role: 'voter' | 'learner' | 'none' }
  | { type: 'node.heartbeat'; id: string }
  /** `joinedIndex`: the membership to end (the record's `joinedIndex` when the leave was asked); absent ends whichever is current. */
  | { type: 'node.remove'; id: string; joinedIndex?: number }
  /** Fixes the cluster network (once; the same values again are accepted) and gives a subnet to every node without one. See apply-network.ts. */
  | { type: 'network.configure'; cidr: string; nodePrefixLength: number; serviceCidr?: string; tenantCidr?: string }
  /** A tenant network: the given block of the pool, or the lowest free one (state version 5, apply-tenant-networks.ts). */
  | { type: 'network.create'; tenant: string; name: string; cidr?: string }
  | { type: 'network.delete'; tenant: string; name: string }
  /** A node's slice of a tenant network (the leader, when it places an instance of the network on a node without one); the same again answers the slice it holds. */
  | { type: 'network.attach'; tenant: string; name: string; node: string }
  | { type: 'network.detach'; tenant: string; name: string; node: string }
  | { type: 'policy.put'; tenant: string; name: string; apps: string[]; ingress: PolicyRule[]; egress?: EgressRule[] }
  | { type: 'policy.delete'; tenant: string; name: string }
  /** `encryption`: the volume's sealed key; `node`: the node that holds it from the start (both state version 4). */
  | { type: 'volume.create'; tenant: string; name: string; sizeBytes: number; io?: VolumeIoLimits; encryption?: VolumeEncryption; node?: string }
  /** Sets a volume's I/O limits (an empty `io` removes them); workloads started from then on get them. */
  | { type: 'volume.set-io'; tenant: string; name: string; io: VolumeIoLimits }
  | { type: 'volume.delete'; tenant: string; name: string }
  /** Records the node that created the volume's filesystem (the executor proposes it on first use); refused when bound to another node. */
  | { type: 'volume.bind'; tenant: string; name: string; node: string }
  /** The volume's node reports what its backing file takes on disk; ignored (not refused) once the volume is gone, made again, or bound elsewhere. Not in history. */
  | { type: 'volume.report'; tenant: string; name: string; createdIndex: number; node: string; usedBytes: number }
  /** Starts moving a bound volume to node `to`: its instances are unplaced and wait until `volume.move-end`. */
  | { type: 'volume.move'; tenant: string; name: string; to: string }
  /** Ends a move: the volume's data is on `node` (the target once copied, or the source again when the copy failed). */
  | { type: 'volume.move-end'; tenant: string; name: string; node: string }
  | { type: 'secret.put'; tenant: string; name: string; ciphertext: Uint8Array; nonce: Uint8Array }
  | { type: 'secret.delete'; tenant: string; name: string }
  | { type: 'kv.put'; key: string; value: string; expectVersion?: number }
  | { type: 'kv.delete'; key: string; expectVersion?: number }
  | { type: 'token.set'; hash: string; sealed: Uint8Array; nonce: Uint8Array }
  /** Creates an API token from its hash (the token itself never enters the log). State version 2. */
  | { type: 'apitoken.create'; id: string; name: string; role: ApiRole; tenants: string[]; hash: string; expiresAt?: number }
  /** Removes an API token: every node refuses it from the entry's apply on. State version 2. */
  | { type: 'apitoken.revoke'; id: string }
  /** Sets the cluster CA (bootstrap, rotation): the trusted certificates, signing one first, and its sealed key. Revocations carry over. */
  | { type: 'ca.set'; certificates: string[]; keySealed: Uint8Array; keyNonce: Uint8Array }
  /**
   * Raises the cluster version (version.ts) to `version`, once every member's
   * record says its code applies that version (STATE_VERSION_LABEL). The
   * leader proposes it by itself. State version 3.
   */
  | { type: 'cluster.version'; version: number };

export type CommandType = Command['type'];

/** The member of the `Command` union of type `T`. */
export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;

/**
 * The node label in which each node's record says the highest state version
 * its code applies (`"3"`), set by the node itself whenever it registers. A
 * label, not a field of its own, so that a node of a newer build registers
 * through a leader of the previous one, which refuses unknown fields.
 */
export const STATE_VERSION_LABEL = 'hivemind.state-version';

/**
 * The resource limits a node can enforce, comma-separated (`cpu,memory`):
 * the cgroup controllers its kernel offers (v1 or v2), which process apps'
 * limits use directly and containers' through runc. The node registers with
 * it; absent (a node of an older release): not known.
 */
export const LIMITS_LABEL = 'hivemind.limits';

/**
 * A node of a release that carries every tenant network whatever its
 * (former) `--tenant-networks` says registers with this label, value
 * `always`; absent: a node of an older release, which carries only what
 * its flag names. Once every member has it, every node carries every
 * tenant network (`src/node/carried-networks.ts`): a fact of the
 * replicated node records, so the nodes cannot disagree.
 */
export const TENANT_NETWORKS_LABEL = 'hivemind.tenant-networks';

/** TENANT_NETWORKS_LABEL's value. */
export const TENANT_NETWORKS_ALWAYS = 'always';

/** Labels whose key starts with this are Hivemind's own (the node sets them when it registers); `node.label` never changes them. */
export const RESERVED_LABEL_PREFIX = 'hivemind.';

/**
 * The keys of the labels a node's agent was started with (`--label k=v`), comma-separated: it registers
 * with them each time, so `node.label` refuses to change them (the flag would bring them back).
 */
export const AGENT_LABELS_LABEL = 'hivemind.agent-labels';

/** The fields of a rollout a `rollout.step` may change. */
export interface RolloutPatch {
  state?: RolloutState;
  message?: string;
  batch?: number[];
  batchStartedAt?: number;
  nextBatchAt?: number;
  done?: number;
}

/**
 * A command as it travels through the log. The proposer stamps `requestId`
 * (from the client, or a fresh one), `time` (its clock, ms since the epoch)
 * and `actor` (who asked: a token id, a node id, "scheduler").
 */
export interface Envelope {
  requestId: string;
  time: number;
  actor: string;
  /**
   * The state version the entry is written in (src/state/version.ts): the
   * cluster version when it was proposed, or the command's own version when
   * that is higher (`cluster.version`). Absent in entries written before the
   * gate: 1. A node whose code is older stops at the entry.
   */
  version?: number;
  /**
   * Metadata, not state: the W3C trace context of the proposal (tracing.ts in
   * src/node), written by the leader in entries of state version
   * TRACE_CONTEXT_VERSION or later when tracing is on. The bridge from Raft
   * (src/node/replicated-state.ts) takes it off before apply: the state
   * machine never sees it, so it changes no state and no result.
   */
  traceparent?: string;
  command: Command;
}

/** A command's outcome, decided at apply and identical on every node. */
export type CommandResult =
  | { ok: true; index: number; value?: unknown }
  | { ok: false; index: number; error: { code: string; message: string; field?: string } };
