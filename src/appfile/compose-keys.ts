/**
 * Which Compose keys Hivemind reads, which it ignores with a warning, and
 * which it refuses, for every mapping of the app file. No key is ever
 * dropped in silence: `checkKeys` reports each one that is not read. Keys
 * that Compose does not know at all are "unknown" (most often a typo, so the
 * message suggests the nearest known key). `x-*` keys are Compose extension
 * fields, free for YAML anchors, and skipped. Pure.
 */
import type { FieldPath, Problems } from './problems.js';

/** What happens to one key. */
export type KeyRule =
  | { kind: 'read' }
  /** Accepted and ignored; the reason is shown as a warning. */
  | { kind: 'ignored'; reason: string }
  /** A Compose key Hivemind cannot honour: an error, with what to do instead when there is something. */
  | { kind: 'unsupported'; reason?: string };

/** The rules of one mapping, by key. */
export type KeyRules = Readonly<Record<string, KeyRule>>;

const read: KeyRule = { kind: 'read' };

function ignored(reason: string): KeyRule {
  return { kind: 'ignored', reason };
}

function unsupported(reason?: string): KeyRule {
  return reason === undefined ? { kind: 'unsupported' } : { kind: 'unsupported', reason };
}

const hivemindDns = 'apps reach each other by name through DNS: <service>.<tenant>.hivemind';
const useDeployResources = 'use deploy.resources.limits.cpus';
const ownNamespaces = 'each instance gets its own namespaces on its tenant\'s network';

/** The top level of an app file. */
export const topLevelKeys: KeyRules = {
  version: read,
  name: read,
  services: read,
  volumes: read,
  secrets: read,
  networks: read,
  'x-hivemind': read,
  configs: read,
  include: unsupported('list every service in one app file'),
  models: unsupported(),
};

/** One service. */
export const serviceKeys: KeyRules = {
  image: read,
  command: read,
  entrypoint: read,
  environment: read,
  ports: read,
  healthcheck: read,
  volumes: read,
  deploy: read,
  labels: read,
  working_dir: read,
  user: read,
  read_only: read,
  stop_grace_period: read,
  stop_signal: read,
  restart: read,
  secrets: read,
  scale: read,
  cpus: read,
  mem_limit: read,
  mem_reservation: read,
  'x-hivemind': read,
  depends_on: ignored('Hivemind starts every app at once; an app should retry until the apps it needs are healthy'),
  networks: read,
  links: read,
  expose: ignored("every port of an instance is open to the other apps on its tenant's network"),
  annotations: unsupported('use labels:'),
  attach: unsupported(),
  blkio_config: unsupported(),
  build: read,
  cap_add: read,
  cap_drop: read,
  configs: read,
  cgroup: unsupported(),
  cgroup_parent: unsupported(),
  container_name: read,
  cpu_count: unsupported(useDeployResources),
  cpu_percent: unsupported(useDeployResources),
  cpu_period: unsupported(useDeployResources),
  cpu_quota: unsupported(useDeployResources),
  cpu_rt_period: unsupported(useDeployResources),
  cpu_rt_runtime: unsupported(useDeployResources),
  cpu_shares: unsupported('use deploy.resources.reservations.cpus'),
  cpuset: unsupported(useDeployResources),
  credential_spec: unsupported(),
  develop: unsupported(),
  device_cgroup_rules: unsupported(),
  devices: unsupported(),
  dns: unsupported(hivemindDns),
  dns_opt: unsupported(hivemindDns),
  dns_search: unsupported(hivemindDns),
  domainname: unsupported(hivemindDns),
  env_file: read,
  extends: unsupported('share settings with YAML anchors: x-base: &base ..., then <<: *base'),
  external_links: unsupported(hivemindDns),
  extra_hosts: read,
  gpus: unsupported(),
  group_add: unsupported(),
  hostname: read,
  init: read,
  ipc: unsupported(ownNamespaces),
  isolation: unsupported(),
  label_file: unsupported('list the labels under labels:'),
  logging: ignored("each node keeps its instances' output; read it with hivemind logs"),
  mac_address: unsupported(),
  mem_swappiness: unsupported(),
  memswap_limit: unsupported(),
  models: unsupported(),
  network_mode: unsupported(ownNamespaces),
  oom_kill_disable: unsupported(),
  oom_score_adj: unsupported(),
  pid: unsupported(ownNamespaces),
  pids_limit: unsupported(),
  platform: unsupported(),
  post_start: unsupported(),
  pre_stop: unsupported(),
  privileged: unsupported('instances never run privileged'),
  profiles: read,
  provider: unsupported(),
  pull_policy: unsupported(),
  runtime: unsupported(),
  security_opt: unsupported(),
  shm_size: unsupported(),
  stdin_open: ignored('instances run without a terminal; their output goes to hivemind logs'),
  storage_opt: unsupported(),
  sysctls: unsupported(),
  tmpfs: read,
  tty: ignored('instances run without a terminal; their output goes to hivemind logs'),
  ulimits: read,
  use_api_socket: unsupported(),
  userns_mode: unsupported(ownNamespaces),
  uts: unsupported(ownNamespaces),
  volumes_from: unsupported('mount the same named volume in both services'),
};

/** An `env_file:` item written as a mapping. */
export const envFileKeys: KeyRules = { path: read, required: read, format: unsupported('env files are read in the .env format') };

export const deployKeys: KeyRules = {
  mode: read,
  replicas: read,
  resources: read,
  restart_policy: read,
  update_config: read,
  placement: read,
  labels: read,
  endpoint_mode: ignored("Hivemind's DNS and proxy decide how clients reach the instances"),
  rollback_config: unsupported("a rollback redeploys the earlier version with update_config's settings"),
};

export const resourcesKeys: KeyRules = { limits: read, reservations: read };

export const limitsKeys: KeyRules = { cpus: read, memory: read, pids: unsupported() };

export const reservationsKeys: KeyRules = {
  cpus: read,
  memory: read,
  devices: unsupported(),
  generic_resources: unsupported(),
};

export const updateConfigKeys: KeyRules = {
  parallelism: read,
  delay: read,
  failure_action: read,
  monitor: read,
  order: read,
  max_failure_ratio: unsupported('an update stops at the first instance that fails'),
};

export const restartPolicyKeys: KeyRules = { condition: read, delay: read, max_attempts: read, window: read };

export const placementKeys: KeyRules = {
  constraints: read,
  max_replicas_per_node: read,
  preferences: unsupported('Hivemind spreads the instances across nodes by itself'),
};

export const healthcheckKeys: KeyRules = {
  test: read,
  interval: read,
  timeout: read,
  retries: read,
  start_period: read,
  disable: read,
  start_interval: unsupported(),
};

export const portKeys: KeyRules = {
  target: read,
  published: read,
  protocol: read,
  mode: read,
  host_ip: read,
  name: unsupported(),
  app_protocol: unsupported(),
};

export const volumeMountKeys: KeyRules = {
  type: read,
  source: read,
  target: read,
  read_only: read,
  bind: unsupported(),
  volume: unsupported(),
  tmpfs: read,
  image: unsupported(),
  consistency: unsupported(),
};

export const serviceSecretKeys: KeyRules = {
  source: read,
  target: read,
  uid: unsupported(),
  gid: unsupported(),
  mode: unsupported(),
};

export const topLevelVolumeKeys: KeyRules = {
  external: read,
  'x-hivemind': read,
  name: unsupported('the key is the volume\'s name'),
  driver: unsupported('Hivemind keeps volumes on the node'),
  driver_opts: unsupported('Hivemind keeps volumes on the node'),
  labels: unsupported(),
};

/** A top-level volume's `x-hivemind`. */
export const volumeExtensionKeys: KeyRules = {
  size: read,
  encrypted: read,
};

export const topLevelConfigKeys: KeyRules = {
  external: read,
  file: read,
  content: read,
  environment: read,
  name: unsupported("the key is the config's name"),
  labels: ignored('Hivemind keeps no labels on configs'),
  template_driver: unsupported(),
};

/** A service's `configs:` item written as a mapping. */
export const serviceConfigKeys: KeyRules = {
  source: read,
  target: read,
  mode: read,
  uid: ignored("the files belong to root and are readable by every user (or as mode: says)"),
  gid: ignored("the files belong to root and are readable by every user (or as mode: says)"),
};

export const topLevelSecretKeys: KeyRules = {
  external: read,
  file: read,
  environment: read,
  content: read,
  name: unsupported("the key is the secret's name"),
  driver: unsupported(),
  driver_opts: unsupported(),
  labels: ignored('Hivemind keeps no labels on secrets'),
  template_driver: unsupported(),
};

const noNetworkDriver = "Hivemind's networks are its own: a block of the tenant pool, routed over the cluster's overlay";

/** A top-level network. */
export const topLevelNetworkKeys: KeyRules = {
  external: read,
  name: read,
  ipam: read,
  driver: ignored(noNetworkDriver),
  driver_opts: ignored(noNetworkDriver),
  internal: ignored('a network policy with egress rules keeps apps from leaving the cluster'),
  attachable: ignored('only the apps of the tenant that name a network join it'),
  enable_ipv6: ignored('tenant networks are IPv4'),
  labels: ignored('Hivemind keeps no labels on networks'),
};

/** A top-level network's `ipam`. */
export const networkIpamKeys: KeyRules = {
  config: read,
  driver: ignored(noNetworkDriver),
  options: ignored(noNetworkDriver),
};

/** One entry of a network's `ipam.config`. */
export const networkIpamConfigKeys: KeyRules = {
  subnet: read,
  ip_range: ignored('each node gets a slice of the network and gives its addresses in turn'),
  gateway: ignored("each node's slice has its own gateway, its first address"),
  aux_addresses: ignored('Hivemind gives every address of a slice to containers'),
};

/** Hivemind's own keys at the top level. */
export const fileExtensionKeys: KeyRules = { tenant: read };

/** Hivemind's own keys in a service. */
export const serviceExtensionKeys: KeyRules = {
  tenant: read,
  canary: read,
  strategy: read,
  priority: read,
  policies: read,
  secrets: read,
  max_per_node: read,
  routes: read,
  proxy: read,
};

export const canaryKeys: KeyRules = { instances: read, weight: read };

/** `x-hivemind.routes` entries written as mappings. */
export const routeKeys: KeyRules = { host: read, path: read };

/** `x-hivemind.proxy`. */
export const proxyKeys: KeyRules = {
  balance: read,
  hash_on: read,
  ab: read,
  timeout: read,
  connect_timeout: read,
  retries: read,
  retry_budget: read,
  breaker: read,
  outlier: read,
  max_concurrent: read,
};

/** `x-hivemind.proxy.breaker`. */
export const breakerKeys: KeyRules = { failures: read, open: read };

/** `x-hivemind.proxy.outlier`. */
export const outlierKeys: KeyRules = { failures: read, ejection: read };

/**
 * Reports every key of `mapping` that the caller will not read: unsupported
 * and unknown keys as errors, ignored keys as warnings. `x-*` keys are
 * skipped, except `x-hivemind` where it has no meaning.
 */
export function checkKeys(mapping: Record<string, unknown>, path: FieldPath, problems: Problems, rules: KeyRules): void {
  for (const key of Object.keys(mapping)) {
    const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
    if (rule === undefined) {
      if (key === 'x-hivemind') problems.error([...path, key], 'belongs at the top level of the file or in a service');
      else if (!key.startsWith('x-')) problems.error([...path, key], `is an unknown key${didYouMean(key, Object.keys(rules))}`);
    } else if (rule.kind === 'ignored') {
      problems.warn([...path, key], `is ignored: ${rule.reason}`);
    } else if (rule.kind === 'unsupported') {
      problems.error([...path, key], `is not supported by Hivemind${rule.reason ? ` (${rule.reason})` : ''}`);
    }
  }
}

function didYouMean(key: string, known: string[]): string {
  if (key.length > 64) return '';
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(key.length / 2));
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance <= bestDistance && (best === undefined || distance < bestDistance)) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : `; did you mean "${best}"?`;
}

/** Levenshtein distance; keys are short, so the quadratic table is fine. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
