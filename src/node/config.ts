/**
 * The agent's settings: flags and environment variables resolved into one
 * validated `AgentConfig`. Every flag has an environment variable
 * (`--data-dir` / `HIVEMIND_DATA_DIR`); a flag wins over its variable, and a
 * variable over the default. Invalid values are reported all at once, each
 * naming the flag (or the variable it came from) and what it must be.
 *
 * `resolveConfig` is pure: the host's name, network interfaces and working
 * directory come in as `AgentSystem` (`currentSystem()` reads the real ones),
 * so resolution is testable without the machine.
 */
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { IDENTIFIER_PATTERN } from '../state/validate.js';
import { NAME_PATTERN } from '../state/types.js';
import { parseJoinToken } from '../security/pinned-token.js';
import { clusterNetworkProblem, DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_PREFIX_LENGTH } from '../state/ipam.js';
import { DEFAULT_SERVICE_CIDR, serviceCidrProblem } from '../state/vip.js';
import { DEFAULT_TENANT_CIDR, tenantPoolProblem } from '../state/tenant-ipam.js';
import { LOG_LEVELS, type LogLevel } from './log-level.js';

/** Default ports (docs/api.md, docs/design.md). */
export const DEFAULT_PORTS = { api: 7070, peer: 7071, gossip: 7072, dns: 7053, proxy: 7080 } as const;
/** The data directory when none is given, relative to where the agent starts. */
export const DEFAULT_DATA_DIR = '.hivemind';
/** Listen on every interface by default; peers reach the node at `advertise`. */
export const DEFAULT_BIND = '0.0.0.0';
/** How long a voter may be unreachable before the leader replaces it. */
export const DEFAULT_VOTER_GRACE_MS = 30_000;
/** One Raft tick. The election timeout is 10 ticks (randomized up to 20). */
export const DEFAULT_TICK_MS = 50;
/** How long the instances of a node marked down stay before the scheduler moves them. */
export const DEFAULT_RESCHEDULE_GRACE_MS = 30_000;
/** How long a node keeps an idle slice of a tenant network by default (src/network/attach-plan.ts). */
export const DEFAULT_NETWORK_DETACH_GRACE_MS = 60_000;
/** How long an update may go without progress before its failure action runs. */
export const DEFAULT_PROGRESS_DEADLINE_MS = 10 * 60_000;
/** Log entries applied between snapshots (log compaction). */
export const DEFAULT_SNAPSHOT_EVERY_ENTRIES = 10_000;
/**
 * Network namespaces the containerd runtime keeps attached for starts: the
 * executor's starts at once (OPERATIONS_MAX, 16), so a deploy of up to 16
 * containers, or the first wave of a larger one, waits for no network.
 */
export const DEFAULT_WARM_NETWORKS = 16;
/** Each warm network holds an address, a veth pair and a namespace (the pool's own WARM_NETWORKS_MAX, src/executor/containerd/warm-pool.ts). */
const WARM_NETWORKS_MAX = 256;

const NAME_BYTES_MAX = 63;
const TOKEN_CHARS_MIN = 16;
const TOKEN_CHARS_MAX = 256;
const VOTER_GRACE_MS_MIN = 1000;
const VOTER_GRACE_MS_MAX = 24 * 3600 * 1000;
const TICK_MS_MIN = 5;
const TICK_MS_MAX = 1000;
const SNAPSHOT_EVERY_MIN = 10;
const SNAPSHOT_EVERY_MAX = 10_000_000;

/** The flags as a CLI parser (commander) hands them over: strings, or numbers when pre-parsed. */
export interface AgentFlags {
  name?: string;
  dataDir?: string;
  bind?: string;
  advertise?: string;
  apiPort?: string | number;
  peerPort?: string | number;
  gossipPort?: string | number;
  dnsPort?: string | number;
  proxyPort?: string | number;
  token?: string;
  /** A duration (`30s`, `500ms`, `2m`); a number is milliseconds. */
  voterGrace?: string | number;
  tickMs?: string | number;
  snapshotEvery?: string | number;
  /** Durations (`30s`, `10m`); a number is milliseconds. */
  rescheduleGrace?: string | number;
  progressDeadline?: string | number;
  /** `on` or `off`: announce for `join --discover` on the hyperswarm DHT. */
  discoverable?: string;
  /** `on` or `off`: serve GET /metrics without a token. */
  metricsPublic?: string;
  /** `on` or `off`: serve the API over plain HTTP instead of HTTPS. */
  insecureApi?: string;
  /** Network namespaces kept ready for container starts; 0 turns the pool off. */
  warmNetworks?: string | number;
  /** The cluster network (IPv4 CIDR), fixed by the first leader (`network.configure`). */
  clusterCidr?: string;
  /** The overlay's VXLAN UDP port. */
  vxlanPort?: string | number;
  /** The range of service VIPs (IPv4 CIDR), fixed by the first leader whose overlay is on. */
  serviceCidr?: string;
  /** The pool tenant networks' blocks come from (IPv4 CIDR), fixed by the first leader whose overlay is on once the cluster runs state version 5. */
  tenantNetworkCidr?: string;
  /** How long a node keeps an idle slice of a tenant network before the leader gives it back (a duration). */
  networkDetachGrace?: string | number;
  /** `off`, `on`, or tenant names separated by commas: whose containers this node attaches to their tenant network while a node of the cluster runs a release older than this one (a warning says it is no longer needed). */
  tenantNetworks?: string;
  /** An OTLP/HTTP collector's URL: export traces there (absent: no tracing). */
  otlpEndpoint?: string;
  /** `debug`, `info`, `warn` or `error`: the least severe log lines written. */
  logLevel?: string;
  /** The node's labels, `KEY=VALUE` separated by commas (`--label`, repeatable on the command line, is joined so). */
  labels?: string;
}

/** The resolved settings of one agent. Ports may be 0 (any free port; the bound one is advertised). */
export interface AgentConfig {
  /** The node's id in the cluster: stable, unique, an identifier of at most 63 characters. */
  name: string;
  /** Absolute path. */
  dataDir: string;
  /** Address to listen on (an IP address). */
  bind: string;
  /** Host or IP address peers and clients use to reach this node. */
  advertise: string;
  ports: { api: number; peer: number; gossip: number; dns: number; proxy: number };
  /**
   * The join token, bare (`hm1.…`): required to join, optional to bootstrap
   * (a fresh one is made if absent). A pinned token given (`hmca:<fp>::hm1.…`)
   * is stripped to this; its pin goes to `tokenCaFingerprint`.
   */
  token?: string;
  /** The CA fingerprint (SHA-256 of the DER, lower-case hex) the given token pins, if it was the pinned form. */
  tokenCaFingerprint?: string;
  voterGraceMs: number;
  tickMs: number;
  snapshotEveryEntries: number;
  /** The scheduler waits this long after a node is marked down before moving its instances. */
  rescheduleGraceMs: number;
  /** An update that makes no progress for this long runs its failure action (pause or rollback). */
  progressDeadlineMs: number;
  /** Announce this node for `hivemind join --discover` on the public hyperswarm DHT (opt-in). */
  discoverable: boolean;
  /** Serve GET /metrics without a token (for a Prometheus without one); off by default, since metrics describe the cluster. */
  metricsPublic: boolean;
  /** Serve the API over plain HTTP (`--insecure-api`): tokens and secrets then cross the network in clear. Off by default (HTTPS). */
  insecureApi: boolean;
  /** Network namespaces the containerd runtime keeps attached and ready for starts (0: none, each start makes its own). */
  warmNetworks: number;
  /** The cluster network the first leader configures (later leaders propose the configured one's values; a different one is refused). */
  clusterCidr: string;
  /** The overlay's VXLAN UDP port; every node of a cluster must use the same. */
  vxlanPort: number;
  /** The range of service VIPs the first leader with the overlay configures (later leaders propose the configured one; a different one is refused). */
  serviceCidr: string;
  /** The tenant network pool the first leader with the overlay configures (tenant-ipam.ts; later leaders propose the configured one; a different one is refused). */
  tenantNetworkCidr: string;
  /** How long a node keeps a slice of a tenant network no instance of it uses before the leader proposes `network.detach` (src/network/attach-plan.ts). */
  networkDetachGraceMs: number;
  /**
   * The former per-node switch (`--tenant-networks`), read only while a
   * member of the cluster runs a release older than this one (during a
   * rolling upgrade, `src/node/carried-networks.ts`): whose containers
   * this node attaches to their tenant networks, `'all'`, `'none'` (the
   * old default) or the tenants named. Once every member runs this
   * release, every node carries every tenant network whatever it says.
   */
  tenantNetworks: 'all' | 'none' | readonly string[];
  /** Where spans are exported, over OTLP/HTTP (docs/operations.md, Traces); absent: tracing is off and costs nothing. */
  otlpEndpoint?: string;
  /** The least severe log lines written (src/agent/agent-log.ts). */
  logLevel: LogLevel;
  /** The node's labels (`--label`): it registers with them each time; placement constraints read them. Empty: none. */
  labels: Record<string, string>;
}

/** The most labels `--label` gives a node. */
export const AGENT_LABELS_MAX = 64;

/** The overlay's VXLAN UDP port by default (IANA's). */
export const DEFAULT_VXLAN_PORT = 4789;

/** One invalid setting. */
export interface ConfigProblem {
  /** The flag, such as `--api-port`. */
  flag: string;
  /** Its environment variable. */
  env: string;
  /** Names the flag or variable the value came from, what it must be, and what it got. */
  message: string;
}

/** `resolveConfig`'s outcome: the config and the warnings to show (settings accepted but no longer needed), or every problem found. */
export type ResolvedConfig = { ok: true; config: AgentConfig; warnings: string[] } | { ok: false; problems: ConfigProblem[] };

/** What resolution reads of the machine. */
export interface AgentSystem {
  hostname: string;
  /** Non-internal IPv4 addresses of the host, in interface order. */
  externalIpv4: string[];
  cwd: string;
}

interface Setting {
  key: keyof AgentFlags;
  flag: string;
  env: string;
}

function setting(key: keyof AgentFlags, env: string): Setting {
  return { key, flag: `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`, env };
}

/** Every flag and its environment variable. */
export const SETTINGS = {
  name: setting('name', 'HIVEMIND_NAME'),
  dataDir: setting('dataDir', 'HIVEMIND_DATA_DIR'),
  bind: setting('bind', 'HIVEMIND_BIND'),
  advertise: setting('advertise', 'HIVEMIND_ADVERTISE'),
  apiPort: setting('apiPort', 'HIVEMIND_API_PORT'),
  peerPort: setting('peerPort', 'HIVEMIND_PEER_PORT'),
  gossipPort: setting('gossipPort', 'HIVEMIND_GOSSIP_PORT'),
  dnsPort: setting('dnsPort', 'HIVEMIND_DNS_PORT'),
  proxyPort: setting('proxyPort', 'HIVEMIND_PROXY_PORT'),
  token: setting('token', 'HIVEMIND_TOKEN'),
  voterGrace: setting('voterGrace', 'HIVEMIND_VOTER_GRACE'),
  tickMs: setting('tickMs', 'HIVEMIND_TICK_MS'),
  snapshotEvery: setting('snapshotEvery', 'HIVEMIND_SNAPSHOT_EVERY'),
  rescheduleGrace: setting('rescheduleGrace', 'HIVEMIND_RESCHEDULE_GRACE'),
  progressDeadline: setting('progressDeadline', 'HIVEMIND_PROGRESS_DEADLINE'),
  discoverable: setting('discoverable', 'HIVEMIND_DISCOVERABLE'),
  metricsPublic: setting('metricsPublic', 'HIVEMIND_METRICS_PUBLIC'),
  insecureApi: setting('insecureApi', 'HIVEMIND_INSECURE_API'),
  warmNetworks: setting('warmNetworks', 'HIVEMIND_WARM_NETWORKS'),
  clusterCidr: setting('clusterCidr', 'HIVEMIND_CLUSTER_CIDR'),
  vxlanPort: setting('vxlanPort', 'HIVEMIND_VXLAN_PORT'),
  serviceCidr: setting('serviceCidr', 'HIVEMIND_SERVICE_CIDR'),
  tenantNetworkCidr: setting('tenantNetworkCidr', 'HIVEMIND_TENANT_NETWORK_CIDR'),
  networkDetachGrace: setting('networkDetachGrace', 'HIVEMIND_NETWORK_DETACH_GRACE'),
  tenantNetworks: setting('tenantNetworks', 'HIVEMIND_TENANT_NETWORKS'),
  otlpEndpoint: setting('otlpEndpoint', 'HIVEMIND_OTLP_ENDPOINT'),
  logLevel: setting('logLevel', 'HIVEMIND_LOG_LEVEL'),
  labels: { key: 'labels', flag: '--label', env: 'HIVEMIND_LABELS' },
} as const satisfies Record<keyof AgentFlags, Setting>;

/** A raw value and where it came from, for messages. */
interface Raw {
  value: string | number;
  source: string;
}

class Resolver {
  readonly problems: ConfigProblem[] = [];

  constructor(
    private readonly flags: AgentFlags,
    private readonly env: Readonly<Record<string, string | undefined>>,
  ) {}

  raw(which: Setting): Raw | undefined {
    const flagValue = this.flags[which.key];
    if (flagValue !== undefined && flagValue !== '') return { value: flagValue, source: which.flag };
    const envValue = this.env[which.env];
    if (envValue !== undefined && envValue !== '') return { value: envValue, source: which.env };
    return undefined;
  }

  problem(which: Setting, raw: Raw, text: string): void {
    this.problems.push({ flag: which.flag, env: which.env, message: `${raw.source} ${text}, got ${JSON.stringify(String(raw.value))}` });
  }

  text(which: Setting, fallback: string, check: (value: string) => string | undefined): string {
    const raw = this.raw(which);
    if (raw === undefined) return fallback;
    const value = String(raw.value).trim();
    const problem = check(value);
    if (problem !== undefined) {
      this.problem(which, raw, problem);
      return fallback;
    }
    return value;
  }

  integer(which: Setting, fallback: number, range: { min: number; max: number; what: string }): number {
    const raw = this.raw(which);
    if (raw === undefined) return fallback;
    const value = typeof raw.value === 'number' ? raw.value : /^\d+$/.test(raw.value.trim()) ? Number(raw.value.trim()) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
      this.problem(which, raw, `must be ${range.what} (a whole number from ${range.min} to ${range.max})`);
      return fallback;
    }
    return value;
  }

  duration(which: Setting, fallback: number, range: { min: number; max: number }): number {
    const raw = this.raw(which);
    if (raw === undefined) return fallback;
    const value = typeof raw.value === 'number' ? raw.value : parseDurationMs(raw.value.trim());
    if (value === undefined || !Number.isSafeInteger(value) || value < range.min || value > range.max) {
      this.problem(which, raw, `must be a duration such as 30s, 500ms or 2m, from ${formatDuration(range.min)} to ${formatDuration(range.max)}`);
      return fallback;
    }
    return value;
  }
}

/**
 * Resolves flags, then environment variables, then defaults. Never throws;
 * on any invalid setting returns every problem found.
 */
export function resolveConfig(flags: AgentFlags, env: Readonly<Record<string, string | undefined>>, system: AgentSystem): ResolvedConfig {
  const resolver = new Resolver(flags, env);
  const name = resolver.text(SETTINGS.name, defaultName(system.hostname), nameProblem);
  const dataDirText = resolver.text(SETTINGS.dataDir, DEFAULT_DATA_DIR, (value) => (value.includes('\0') ? 'must be a path' : undefined));
  const bind = resolver.text(SETTINGS.bind, DEFAULT_BIND, (value) => (isIP(value) === 0 ? 'must be an IP address to listen on, such as 0.0.0.0 or 127.0.0.1' : undefined));
  const advertise = resolver.text(SETTINGS.advertise, defaultAdvertise(bind, system.externalIpv4), hostProblem);
  const port = (which: Setting, fallback: number): number => resolver.integer(which, fallback, { min: 0, max: 65535, what: 'a port number (0 picks a free one)' });
  const ports = {
    api: port(SETTINGS.apiPort, DEFAULT_PORTS.api),
    peer: port(SETTINGS.peerPort, DEFAULT_PORTS.peer),
    gossip: port(SETTINGS.gossipPort, DEFAULT_PORTS.gossip),
    dns: port(SETTINGS.dnsPort, DEFAULT_PORTS.dns),
    proxy: port(SETTINGS.proxyPort, DEFAULT_PORTS.proxy),
  };
  const token = resolver.text(SETTINGS.token, '', tokenProblem);
  const voterGraceMs = resolver.duration(SETTINGS.voterGrace, DEFAULT_VOTER_GRACE_MS, { min: VOTER_GRACE_MS_MIN, max: VOTER_GRACE_MS_MAX });
  const tickMs = resolver.integer(SETTINGS.tickMs, DEFAULT_TICK_MS, { min: TICK_MS_MIN, max: TICK_MS_MAX, what: 'the length of a Raft tick in milliseconds' });
  const snapshotEveryEntries = resolver.integer(SETTINGS.snapshotEvery, DEFAULT_SNAPSHOT_EVERY_ENTRIES, {
    min: SNAPSHOT_EVERY_MIN,
    max: SNAPSHOT_EVERY_MAX,
    what: 'the number of applied entries between snapshots',
  });
  const rescheduleGraceMs = resolver.duration(SETTINGS.rescheduleGrace, DEFAULT_RESCHEDULE_GRACE_MS, { min: 500, max: 24 * 3600 * 1000 });
  const progressDeadlineMs = resolver.duration(SETTINGS.progressDeadline, DEFAULT_PROGRESS_DEADLINE_MS, { min: 1000, max: 7 * 24 * 3600 * 1000 });
  const discoverable = resolver.text(SETTINGS.discoverable, 'off', (value) => (/^(on|off|true|false|1|0|yes|no)$/i.test(value) ? undefined : 'must be on or off'));
  const metricsPublic = resolver.text(SETTINGS.metricsPublic, 'off', (value) => (/^(on|off|true|false|1|0|yes|no)$/i.test(value) ? undefined : 'must be on or off'));
  const insecureApi = resolver.text(SETTINGS.insecureApi, 'off', (value) => (/^(on|off|true|false|1|0|yes|no)$/i.test(value) ? undefined : 'must be on or off'));
  const warmNetworks = resolver.integer(SETTINGS.warmNetworks, DEFAULT_WARM_NETWORKS, { min: 0, max: WARM_NETWORKS_MAX, what: 'the number of network namespaces kept ready for containers (0 turns the pool off)' });
  const clusterCidr = resolver.text(SETTINGS.clusterCidr, DEFAULT_CLUSTER_CIDR, (value) => clusterNetworkProblem(value, DEFAULT_NODE_PREFIX_LENGTH)?.reason);
  const vxlanPort = resolver.integer(SETTINGS.vxlanPort, DEFAULT_VXLAN_PORT, { min: 1, max: 65535, what: 'the UDP port of the VXLAN overlay' });
  const serviceCidr = resolver.text(SETTINGS.serviceCidr, DEFAULT_SERVICE_CIDR, (value) => serviceCidrProblem(value, clusterCidr));
  const tenantNetworkCidr = resolver.text(SETTINGS.tenantNetworkCidr, DEFAULT_TENANT_CIDR, (value) => tenantPoolProblem(value, { 'cluster network': clusterCidr, 'service range': serviceCidr }));
  const networkDetachGraceMs = resolver.duration(SETTINGS.networkDetachGrace, DEFAULT_NETWORK_DETACH_GRACE_MS, { min: 1000, max: 24 * 3600 * 1000 });
  const tenantNetworksText = resolver.text(SETTINGS.tenantNetworks, 'off', (value) => (/^(on|off)$/i.test(value) || value.split(',').every((tenant) => NAME_PATTERN.test(tenant.trim())) ? undefined : 'must be on, off, or tenant names separated by commas'));
  const warnings = retiredSettingWarnings(resolver);
  const otlpEndpoint = resolver.text(SETTINGS.otlpEndpoint, '', otlpEndpointProblem);
  const logLevel = resolver.text(SETTINGS.logLevel, 'info', (value) => ((LOG_LEVELS as readonly string[]).includes(value) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}`)) as LogLevel;
  const labelsText = resolver.text(SETTINGS.labels, '', (value) => parseAgentLabels(value).problem);
  duplicatePortProblems(resolver, ports);
  if (resolver.problems.length > 0) return { ok: false, problems: resolver.problems };
  const config: AgentConfig = {
    name,
    dataDir: isAbsolute(dataDirText) ? dataDirText : resolve(system.cwd, dataDirText),
    bind,
    advertise,
    ports,
    voterGraceMs,
    tickMs,
    snapshotEveryEntries,
    rescheduleGraceMs,
    progressDeadlineMs,
    discoverable: /^(on|true|1|yes)$/i.test(discoverable),
    metricsPublic: /^(on|true|1|yes)$/i.test(metricsPublic),
    insecureApi: /^(on|true|1|yes)$/i.test(insecureApi),
    warmNetworks,
    clusterCidr,
    vxlanPort,
    serviceCidr,
    tenantNetworkCidr,
    networkDetachGraceMs,
    tenantNetworks: /^on$/i.test(tenantNetworksText) ? 'all' : /^off$/i.test(tenantNetworksText) ? 'none' : tenantNetworksText.split(',').map((tenant) => tenant.trim()),
    logLevel,
    labels: parseAgentLabels(labelsText).labels,
  };
  if (otlpEndpoint !== '') config.otlpEndpoint = otlpEndpoint;
  if (token !== '') {
    // tokenProblem accepted it, pinned form included.
    const parsed = parseJoinToken(token);
    config.token = parsed.token;
    if (parsed.caFingerprint !== undefined) config.tokenCaFingerprint = parsed.caFingerprint;
  }
  return { ok: true, config, warnings };
}

/**
 * Settings kept so that existing scripts still start, which are no longer
 * needed: a warning each. `--tenant-networks` was a per-node switch that
 * had to be the same on every node; once every member runs this release,
 * every node carries every tenant network (a replicated fact: each node
 * reaches the cluster version TENANT_NETWORKS_EVERYWHERE_VERSION), and the
 * switch is read only until then.
 */
function retiredSettingWarnings(resolver: Resolver): string[] {
  const raw = resolver.raw(SETTINGS.tenantNetworks);
  if (raw === undefined) return [];
  return [`${raw.source} is no longer needed: once every node runs this release, every node puts containers on their tenant's networks and it is ignored (until then it keeps its meaning on this node); leave it out`];
}

const labelKeyPattern = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$/;

/**
 * `KEY=VALUE,KEY=VALUE` as labels, or the first problem: a key of letters,
 * digits and `. _ / -` (at most 128), not Hivemind's own (`hivemind.`), a
 * value of printable characters without commas (at most 256), at most
 * AGENT_LABELS_MAX labels. Empty text: none.
 */
export function parseAgentLabels(text: string): { labels: Record<string, string>; problem?: string } {
  const labels: Record<string, string> = {};
  const items = text.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length > AGENT_LABELS_MAX) return { labels: {}, problem: `must give at most ${AGENT_LABELS_MAX} labels` };
  for (const item of items) {
    const equals = item.indexOf('=');
    const key = equals < 0 ? item : item.slice(0, equals);
    const value = equals < 0 ? '' : item.slice(equals + 1);
    if (equals < 0 || !labelKeyPattern.test(key)) return { labels: {}, problem: `must be KEY=VALUE labels with keys of letters, digits and . _ / - (${JSON.stringify(item)} is not)` };
    if (key.startsWith('hivemind.')) return { labels: {}, problem: `must not set Hivemind's own labels (${JSON.stringify(key)} starts with "hivemind.")` };
    // eslint-disable-next-line no-control-regex
    if (value.length > 256 || /[\u0000-\u001f\u007f]/.test(value)) return { labels: {}, problem: `must have label values of at most 256 printable characters (${JSON.stringify(key)})` };
    labels[key] = value;
  }
  return { labels };
}

/** The machine as `resolveConfig` sees it. */
export function currentSystem(): AgentSystem {
  const externalIpv4: string[] = [];
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) externalIpv4.push(address.address);
    }
  }
  return { hostname: hostname(), externalIpv4, cwd: process.cwd() };
}

/** Formats every problem, one per line. */
export function formatConfigProblems(problems: ConfigProblem[]): string {
  return problems.map((problem) => `invalid setting: ${problem.message}`).join('\n');
}

/** The host name cut to a valid node name (the part before the first dot, if that helps). */
function defaultName(hostname: string): string {
  const short = hostname.split('.')[0] ?? hostname;
  return nameProblem(hostname) === undefined ? hostname : nameProblem(short) === undefined ? short : 'node';
}

function nameProblem(value: string): string | undefined {
  if (Buffer.byteLength(value, 'utf8') > NAME_BYTES_MAX || !IDENTIFIER_PATTERN.test(value)) {
    return `must be a node name of 1 to ${NAME_BYTES_MAX} letters, digits and . _ : @ - (starting with a letter or digit)`;
  }
  return undefined;
}

function hostProblem(value: string): string | undefined {
  if (isIP(value) !== 0) return undefined;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(value)) {
    return 'must be a host name or IP address peers can reach this node at, without a port';
  }
  return undefined;
}

/** An OTLP/HTTP endpoint: an http or https URL without credentials (they would show in logs). */
function otlpEndpointProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be the URL of an OTLP/HTTP collector, such as http://127.0.0.1:4318';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL of an OTLP/HTTP collector';
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
  return undefined;
}

function tokenProblem(text: string): string | undefined {
  let value: string;
  try {
    value = parseJoinToken(text).token;
  } catch (error) {
    return (error as Error).message;
  }
  if (value.length < TOKEN_CHARS_MIN || value.length > TOKEN_CHARS_MAX || !/^[\x21-\x7e]+$/.test(value)) {
    return `must be a join token of ${TOKEN_CHARS_MIN} to ${TOKEN_CHARS_MAX} printable characters without spaces (the first node prints it; \`hivemind token\` shows it)`;
  }
  return undefined;
}

/** A specific bind address is also where peers reach the node; a wildcard one is not. */
function defaultAdvertise(bind: string, externalIpv4: string[]): string {
  if (bind !== '0.0.0.0' && bind !== '::') return bind;
  return externalIpv4[0] ?? '127.0.0.1';
}

function duplicatePortProblems(resolver: Resolver, ports: AgentConfig['ports']): void {
  const seen = new Map<number, string>();
  const tcp: [keyof typeof ports, Setting][] = [
    ['api', SETTINGS.apiPort],
    ['peer', SETTINGS.peerPort],
    ['proxy', SETTINGS.proxyPort],
  ];
  for (const [key, which] of tcp) {
    const value = ports[key];
    if (value === 0) continue;
    const other = seen.get(value);
    if (other !== undefined) {
      resolver.problems.push({ flag: which.flag, env: which.env, message: `${which.flag} must differ from ${other} (both are ${value})` });
    }
    seen.set(value, which.flag);
  }
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `500ms`, `30s`, `2m`, `1h`, `1.5s`; undefined for anything else. */
export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]) * DURATION_UNITS_MS[match[2]!]!;
  return Number.isFinite(value) ? Math.round(value) : undefined;
}

/** `1500` → `1.5s`, `60000` → `1m`. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
