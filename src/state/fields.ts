/**
 * The parsers of the fields that commands share (names, identifiers, app
 * specs, policy rules, ...) and the limits on their sizes. Each command's own
 * schema, built from these, is in its module (`apply-*.ts`, listed in
 * `commands.ts`); `validate.ts` runs them.
 *
 * Pure: no Node API.
 */
import type { StateError } from './errors.js';
import { parseCidr } from './ipam.js';
import {
  boolean,
  bytes,
  either,
  fieldPath,
  integer,
  isPlainObject,
  list,
  nullable,
  object,
  oneOf,
  optional,
  problem,
  record,
  refine,
  text,
  type Parser,
} from './schema.js';
import {
  NAME_PATTERN,
  type AppSpec,
  type Command,
  type CommandType,
  type EndpointPort,
  type Envelope,
  type InstanceEndpoint,
  type HealthcheckSpec,
  type HivemindSpec,
  type ProxySpec,
  type LinkSpec,
  type NetworkAliasSpec,
  type RouteSpec,
  type PolicyRule,
  type EgressRule,
  type PortSpec,
  type Quota,
  type CertificateRecord,
  type Resources,
  type RestartSpec,
  type TenantSettings,
  type RolloutPatch,
  type UpdateSpec,
  type VolumeIoLimits,
  type VolumeMount,
  type ContainerSettings,
  type TmpfsSpec,
  type UlimitSpec,
  type ExtraHostSpec,
  type ConfigMount,
  type ConfigFileSpec,
  type DeployNetwork,
} from './types.js';
import { isCapability } from './capabilities.js';
import { specNetworks } from './app-networks.js';

/** Limits on the sizes of command fields. Each is enforced by `validateCommand`. */
export const LIMITS = {
  /** A config entry's value, in UTF-8 bytes. */
  kvValueBytesMax: 512 * 1024,
  /** A config key, in UTF-8 bytes. */
  kvKeyBytesMax: 512,
  /** A secret's ciphertext, GCM tag included. */
  secretCiphertextBytesMax: 64 * 1024,
  /** The GCM tag that ends every ciphertext. */
  sealTagBytes: 16,
  /** The GCM nonce. */
  sealNonceBytes: 12,
  /** The sealed join token, tag included. */
  tokenSealedBytesMax: 1024,
  /** One CA certificate in PEM. */
  certificatePemBytesMax: 8192,
  /** CA certificates trusted at once (two during a rotation). */
  caCertificatesMax: 4,
  /** The sealed CA key (PKCS#8 PEM of a P-256 key), tag included. */
  caKeySealedBytesMax: 4096,
  replicasMax: 10_000,
  /** Apps in one app file's atomic deploy. */
  appsPerDeployMax: 100,
  /** Instance placements or status updates in one command. */
  batchItemsMax: 10_000,
  /** An instance or node id, a request id. */
  identifierBytesMax: 256,
  /** Free text fields: image, user, working directory, paths, constraints, status messages. */
  textBytesMax: 4096,
  /** One argv item, one environment value. */
  argumentBytesMax: 32 * 1024,
  argumentsMax: 1024,
  environmentKeysMax: 1024,
  labelsMax: 256,
  labelBytesMax: 1024,
  portsMax: 256,
  volumesMax: 256,
  constraintsMax: 256,
  /** Names listed by a policy or an app (apps, tenants, secrets, policies). */
  namesMax: 1024,
  policyRulesMax: 256,
  /** Host names an app declares for the proxy (`x-hivemind.routes`). */
  routesMax: 64,
  /** Any duration, in milliseconds: a year. */
  durationMsMax: 365 * 24 * 3600 * 1000,
  /** An app's memory limit or reservation: below 4 MiB no process starts (a bare `1` means one byte, not 1 GiB). */
  appMemoryBytesMin: 4 * 1024 * 1024,
  /** An app's memory limit or reservation: 64 TiB, beyond any node. */
  appMemoryBytesMax: 64 * 1024 ** 4,
  /** An app's CPU limit or reservation in millicores: 0.01 CPU, the smallest share the kernel's CFS quota enforces. */
  appCpuMillisMin: 10,
  /** An app's CPU limit or reservation in millicores: 1024 cores, beyond any node. */
  appCpuMillisMax: 1024 * 1000,
  /** An image reference (Docker's limit on the name is 255; a tag and a digest come on top). */
  imageReferenceBytesMax: 512,
  /** The configs of one app, all files together, in bytes (decoded): it is in every version of the app the state keeps. */
  configBytesMax: 1024 * 1024,
  /** Files of the configs of one app. */
  configFilesMax: 64,
} as const;

/**
 * Docker's image reference grammar (distribution/reference):
 * `[host[:port]/]path[:tag][@algorithm:hex]`, where each path component is
 * lower-case letters and digits joined by `.`, `_`, `__` or dashes, a tag
 * is at most 128 of `[A-Za-z0-9_.-]` not starting with `.` or `-`, and a
 * digest is `sha256:` with 64 hex digits (or `sha512:` with 128).
 */
const IMAGE_PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_HOST = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?';
const IMAGE_NAME = new RegExp(`^(?:${IMAGE_HOST}/)?${IMAGE_PATH_COMPONENT}(?:/${IMAGE_PATH_COMPONENT})*$`);
const IMAGE_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const IMAGE_DIGEST = /^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

/** What is wrong with an image reference (a sentence), or undefined when Docker's grammar takes it. Pure. */
export function imageReferenceProblem(reference: string): string | undefined {
  const at = reference.indexOf('@');
  const named = at === -1 ? reference : reference.slice(0, at);
  if (at !== -1) {
    const digest = reference.slice(at + 1);
    if (!IMAGE_DIGEST.test(digest)) return `has digest "${digest}", which is not sha256: and 64 lower-case hex digits`;
  }
  // A colon after the last slash starts the tag; one before it belongs to the host's port.
  const colon = named.lastIndexOf(':');
  const tagged = colon > named.lastIndexOf('/');
  const name = tagged ? named.slice(0, colon) : named;
  if (tagged && !IMAGE_TAG.test(named.slice(colon + 1))) {
    return `has tag "${named.slice(colon + 1)}"; a tag is 1 to 128 letters, digits, _ . and -, not starting with . or -`;
  }
  if (name.length > 255) return 'has a name longer than 255 characters';
  if (!IMAGE_NAME.test(name)) {
    const lower = name.toLowerCase() !== name && IMAGE_NAME.test(name.toLowerCase()) ? ' (image names are lower case)' : '';
    return `has name "${name}", which is not an image name: [host[:port]/]path, each path part lower-case letters and digits joined by . _ or -${lower}`;
  }
  return undefined;
}

/** A host name in lower case: dot-separated DNS labels. */
export const HOST_PATTERN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Node and instance ids: printable, no spaces or slashes. */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/;

/** A name of a tenant, app, volume, secret or policy: a DNS label. */
export const name = text({ bytesMin: 1, bytesMax: 63, pattern: NAME_PATTERN, patternHint: 'a DNS label (a-z, 0-9 and -, at most 63, not starting or ending with -)' });
/** A node or instance id. */
export const identifier = text({
  bytesMin: 1,
  bytesMax: LIMITS.identifierBytesMax,
  pattern: IDENTIFIER_PATTERN,
  patternHint: 'an identifier (letters, digits, and . _ : @ -)',
});
/** Free text of at most LIMITS.textBytesMax (status messages, reasons). */
export const freeText = text({ bytesMax: LIMITS.textBytesMax });
/**
 * A failure's cause as an instance record keeps it (`Instance.lastFailure`):
 * one line, not empty, at most 1 KiB (FAILURE_MESSAGE_CHARS_MAX characters
 * of UTF-16 take at most 3 bytes each).
 */
export const failureReason = text({ bytesMin: 1, bytesMax: 1024 });
/** Free text that is not empty. */
export const nonEmptyText = text({ bytesMin: 1, bytesMax: LIMITS.textBytesMax });
const argument = text({ bytesMax: LIMITS.argumentBytesMax, multiline: true });
/** A whole number from 0 (counts, amounts, times in ms). */
export const count = integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const amount = count;
const duration = integer({ min: 0, max: LIMITS.durationMsMax });
const port = integer({ min: 1, max: 65535 });
const absolutePath = text({ bytesMin: 1, bytesMax: LIMITS.textBytesMax, pattern: /^\//, patternHint: 'an absolute path (starting with /)' });
/** A list of distinct names. */
export const names = list(name, { max: LIMITS.namesMax, unique: true });
const argv = list(argument, { max: LIMITS.argumentsMax });
/** Labels: keys without spaces, short values. */
export const labels = record(text({ bytesMax: LIMITS.labelBytesMax }), {
  key: text({ bytesMin: 1, bytesMax: LIMITS.labelBytesMax, pattern: /^\S+$/, patternHint: 'a key without spaces' }),
  keysMax: LIMITS.labelsMax,
});

/** A node's resources: any whole amounts. */
export const resources = object<Resources>({ cpuMillis: optional(amount), memoryBytes: optional(amount) });

/** An app's limits and reservations: whole numbers within sensible bounds, so a slip (`memory: 1`, `cpus: 1e9`) is refused, not run. */
const appResources = object<Resources>({
  cpuMillis: optional(
    refine(integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (value, path) =>
      value < LIMITS.appCpuMillisMin || value > LIMITS.appCpuMillisMax
        ? { field: path, text: `is ${value} millicores (${value / 1000} CPUs); it must be from ${LIMITS.appCpuMillisMin} (0.01 CPU) to ${LIMITS.appCpuMillisMax} (${LIMITS.appCpuMillisMax / 1000} CPUs)` }
        : undefined,
    ),
  ),
  memoryBytes: optional(
    refine(integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (value, path) =>
      value < LIMITS.appMemoryBytesMin || value > LIMITS.appMemoryBytesMax
        ? { field: path, text: `is ${value} bytes; it must be from 4 MiB (${LIMITS.appMemoryBytesMin} bytes) to 64 TiB${value < LIMITS.appMemoryBytesMin ? ' (a bare number is bytes: write 512M or 1G)' : ''}` }
        : undefined,
    ),
  ),
});

/** A tenant's quota; absent fields are unlimited. */
export const quota = object<Quota>({
  cpuMillis: optional(amount),
  memoryBytes: optional(amount),
  instances: optional(count),
  apps: optional(count),
  volumes: optional(count),
  storageBytes: optional(amount),
});

/** A tenant's settings (host users, host mounts, encrypted volumes, capabilities). */
export const tenantSettings = object<TenantSettings>({ hostUsers: optional(boolean()), hostMounts: optional(boolean()), encryptVolumes: optional(boolean()), capabilities: optional(list(capability(), { max: 64, unique: true })) });

const portSpec = object<PortSpec>({ target: port, published: optional(port), protocol: oneOf(['tcp', 'udp']) });

const healthcheck = refine(
  object<HealthcheckSpec>({
    test: list(argument, { min: 1, max: LIMITS.argumentsMax }),
    intervalMs: duration,
    timeoutMs: duration,
    retries: integer({ min: 0, max: 1000 }),
    startPeriodMs: duration,
  }),
  (value, path) => {
    const [kind] = value.test;
    if (kind !== 'CMD' && kind !== 'CMD-SHELL' && kind !== 'NONE' && kind !== 'HTTP' && kind !== 'TCP') {
      return { field: `${path}.test[0]`, text: 'must be "CMD", "CMD-SHELL", "NONE" (Compose healthcheck forms), "HTTP" or "TCP"' };
    }
    if (kind === 'HTTP' || kind === 'TCP') {
      if (value.test.length !== 2) return { field: `${path}.test`, text: `must be ["${kind}", ${kind === 'HTTP' ? '"http://HOST:PORT/PATH"' : '"HOST:PORT"'}]` };
      const target = value.test[1]!;
      if (kind === 'HTTP' && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(target)) return { field: `${path}.test[1]`, text: `must be an http:// or https:// URL, got "${target}"` };
      if (kind === 'TCP' && !/^(\[[0-9a-fA-F:.]+\]|[^\s:]+):\d{1,5}$/.test(target)) return { field: `${path}.test[1]`, text: `must be HOST:PORT, got "${target}"` };
      return undefined;
    }
    if (kind !== 'NONE' && value.test.length < 2) return { field: `${path}.test`, text: `must name a command after "${kind}"` };
    return undefined;
  },
);

const volumeSource = either<string>((input) => typeof input === 'string' && input.startsWith('/'), absolutePath, name);
const ioRate = optional(integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
/** A volume's I/O limits. */
export const volumeIoLimits = object<VolumeIoLimits>({ readBytesPerSecond: ioRate, writeBytesPerSecond: ioRate, readIops: ioRate, writeIops: ioRate });
const volumeMount = object<VolumeMount>({ source: volumeSource, target: absolutePath, readOnly: boolean() });

const updateSpec = object<UpdateSpec>({
  parallelism: integer({ min: 0, max: LIMITS.replicasMax }),
  delayMs: duration,
  failureAction: oneOf(['pause', 'rollback', 'continue']),
  order: oneOf(['stop-first', 'start-first']),
  monitorMs: duration,
});

const restartSpec = object<RestartSpec>({
  condition: oneOf(['none', 'on-failure', 'any']),
  delayMs: duration,
  maxAttempts: optional(count),
  windowMs: duration,
});

const routeSpec = object<RouteSpec>({
  host: text({ bytesMin: 1, bytesMax: 253, pattern: HOST_PATTERN, patternHint: 'a lower-case host name like "shop.example.com", without a port' }),
  path: optional(text({ bytesMin: 1, bytesMax: 1024, pattern: /^\/\S*$/, patternHint: 'a path prefix starting with / and without spaces' })),
});

const proxySpec = refine(
  object<ProxySpec>({
    balance: optional(oneOf(['round-robin', 'least-request', 'weighted', 'hash'])),
    hashHeader: optional(text({ bytesMin: 1, bytesMax: 128, pattern: /^[a-z0-9!#$%&'*+.^_`|~-]+$/, patternHint: 'a lower-case header name' })),
    hashCookie: optional(text({ bytesMin: 1, bytesMax: 128, pattern: /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, patternHint: 'a cookie name' })),
    abHeader: optional(text({ bytesMin: 1, bytesMax: 128, pattern: /^[a-z0-9!#$%&'*+.^_`|~-]+$/, patternHint: 'a lower-case header name' })),
    abCookie: optional(text({ bytesMin: 1, bytesMax: 128, pattern: /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, patternHint: 'a cookie name' })),
    abValue: optional(text({ bytesMin: 1, bytesMax: 256, pattern: /^[\x21-\x7e]+$/, patternHint: 'visible ASCII without spaces' })),
    timeoutMs: optional(integer({ min: 1, max: LIMITS.durationMsMax })),
    connectTimeoutMs: optional(integer({ min: 1, max: LIMITS.durationMsMax })),
    retries: optional(integer({ min: 0, max: 10 })),
    retryBudgetPercent: optional(integer({ min: 0, max: 100 })),
    breakerFailures: optional(integer({ min: 1, max: 1000 })),
    breakerOpenMs: optional(integer({ min: 1, max: LIMITS.durationMsMax })),
    outlierFailures: optional(integer({ min: 1, max: 1000 })),
    outlierEjectionMs: optional(integer({ min: 1, max: LIMITS.durationMsMax })),
    maxConcurrent: optional(integer({ min: 1, max: 1_000_000 })),
  }),
  (value, path) => {
    if (value.hashHeader !== undefined && value.hashCookie !== undefined) return { field: `${path}.hashCookie`, text: 'cannot be set with hashHeader; hash on one of them' };
    if (value.balance === 'hash' && value.hashHeader === undefined && value.hashCookie === undefined) return { field: `${path}.hashHeader`, text: 'or hashCookie must be set when balance is "hash"' };
    if (value.abHeader !== undefined && value.abCookie !== undefined) return { field: `${path}.abCookie`, text: 'cannot be set with abHeader; the A/B rule reads one of them' };
    if (value.abValue !== undefined && value.abHeader === undefined && value.abCookie === undefined) return { field: `${path}.abValue`, text: 'needs abHeader or abCookie' };
    return undefined;
  },
);

/** Networks one app may join: as many as its tenant may hold (tenant-ipam.ts, NETWORKS_PER_TENANT_MAX). */
const APP_NETWORKS_MAX = 16;

const hivemindSpec = object<HivemindSpec>({
  canary: optional(
    object<NonNullable<HivemindSpec['canary']>>({
      instances: optional(integer({ min: 0, max: LIMITS.replicasMax })),
      weightPercent: optional(integer({ min: 0, max: 100 })),
    }),
  ),
  strategy: optional(oneOf(['rolling', 'blue-green', 'canary'])),
  priority: optional(integer({ min: -1_000_000, max: 1_000_000 })),
  policies: optional(names),
  secrets: optional(names),
  maxPerNode: optional(integer({ min: 1, max: LIMITS.replicasMax })),
  routes: optional(list(routeSpec, { max: LIMITS.routesMax })),
  proxy: optional(proxySpec),
  aliases: optional(names),
  links: optional(list(object<LinkSpec>({ app: name, alias: name }), { max: LIMITS.namesMax })),
  networkAliases: optional(list(object<NetworkAliasSpec>({ network: name, aliases: list(name, { min: 1, max: LIMITS.namesMax, unique: true }) }), { min: 1, max: APP_NETWORKS_MAX })),
});

/** A capability name with its `CAP_` prefix (`CAP_NET_ADMIN`), or `ALL`. */
function capability(): Parser<string> {
  return refine(text({ bytesMin: 1, bytesMax: 64, pattern: /^(CAP_[A-Z_]+|ALL)$/, patternHint: 'a capability like "CAP_NET_ADMIN", or "ALL"' }), (value, path) =>
    isCapability(value) ? undefined : { field: path, text: `"${value}" is not a Linux capability` },
  );
}

/** The rlimits Compose's `ulimits` names, as setrlimit(2) knows them. */
export const ULIMIT_NAMES = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'] as const;

/** An instance's settings: hostname, init, tmpfs, ulimits, capabilities, extra hosts. */
const containerSettings = object<ContainerSettings>({
  hostname: optional(text({ bytesMin: 1, bytesMax: 63, pattern: /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/, patternHint: 'a host name: letters, digits and -, at most 63' })),
  init: optional(boolean()),
  tmpfs: optional(list(object<TmpfsSpec>({ target: absolutePath, sizeBytes: optional(integer({ min: 4096, max: LIMITS.appMemoryBytesMax })), mode: optional(integer({ min: 0, max: 0o7777 })) }), { max: LIMITS.volumesMax })),
  ulimits: optional(
    list(
      refine(object<UlimitSpec>({ name: oneOf(ULIMIT_NAMES), soft: integer({ min: -1, max: Number.MAX_SAFE_INTEGER }), hard: integer({ min: -1, max: Number.MAX_SAFE_INTEGER }) }), (value, path) =>
        value.hard !== -1 && (value.soft === -1 || value.soft > value.hard) ? { field: `${path}.soft`, text: `(${value.soft}) must not exceed hard (${value.hard})` } : undefined,
      ),
      { max: ULIMIT_NAMES.length },
    ),
  ),
  capAdd: optional(list(capability(), { max: 64, unique: true })),
  capDrop: optional(list(capability(), { max: 64, unique: true })),
  extraHosts: optional(
    list(
      object<ExtraHostSpec>({
        host: text({ bytesMin: 1, bytesMax: 253, pattern: /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, patternHint: 'a host name' }),
        address: text({ bytesMin: 2, bytesMax: 45, pattern: /^([0-9.]+|[0-9a-fA-F:.]+|host-gateway)$/, patternHint: 'an IPv4 or IPv6 address, or host-gateway' }),
      }),
      { max: LIMITS.routesMax },
    ),
  ),
});

/** A relative file path inside a config folder: no `..`, no leading `/`, no empty part. */
const CONFIG_PATH_PATTERN = /^(|(?!\.\.?(\/|$))[^/\0]+(\/(?!\.\.?(\/|$))[^/\0]+)*)$/;

const configMount = object<ConfigMount>({
  source: nonEmptyText,
  target: absolutePath,
  files: list(
    object<ConfigFileSpec>({
      path: text({ bytesMax: 1024, pattern: CONFIG_PATH_PATTERN, patternHint: 'a relative path without .. (or "" for a single file)' }),
      data: text({ bytesMax: Math.ceil((LIMITS.configBytesMax * 4) / 3) + 4, pattern: /^[A-Za-z0-9+/]*={0,2}$/, patternHint: 'base64' }),
    }),
    { min: 1, max: LIMITS.configFilesMax },
  ),
  mode: optional(integer({ min: 0, max: 0o777 })),
});


const appSpecShape = object<AppSpec>({
  name,
  tenant: name,
  image: optional(
    refine(text({ bytesMin: 1, bytesMax: LIMITS.imageReferenceBytesMax, pattern: /^\S+$/, patternHint: 'an image reference without spaces' }), (value, path) => {
      const problem = imageReferenceProblem(value);
      return problem === undefined ? undefined : { field: path, text: `"${value}" ${problem}` };
    }),
  ),
  command: optional(argv),
  entrypoint: optional(argv),
  workingDir: optional(absolutePath),
  user: optional(nonEmptyText),
  readOnly: boolean(),
  replicas: integer({ min: 0, max: LIMITS.replicasMax }),
  environment: record(argument, {
    key: text({ bytesMin: 1, bytesMax: LIMITS.labelBytesMax, pattern: /^[^=\s]+$/, patternHint: 'a variable name without = or spaces' }),
    keysMax: LIMITS.environmentKeysMax,
  }),
  ports: list(portSpec, { max: LIMITS.portsMax }),
  healthcheck: optional(healthcheck),
  volumes: list(volumeMount, { max: LIMITS.volumesMax }),
  limits: appResources,
  reservations: appResources,
  update: updateSpec,
  restart: restartSpec,
  stopGraceMs: optional(duration),
  stopSignal: optional(text({ bytesMin: 1, bytesMax: 16, pattern: /^(SIG)?[A-Z0-9+-]+$/, patternHint: 'a signal name like "SIGTERM"' })),
  constraints: list(nonEmptyText, { max: LIMITS.constraintsMax }),
  labels,
  hivemind: hivemindSpec,
  container: optional(containerSettings),
  configs: optional(list(configMount, { max: LIMITS.configFilesMax })),
  networks: optional(list(name, { min: 1, max: APP_NETWORKS_MAX, unique: true })),
});

/** Cross-field rules of an app spec, after each field is valid. */
function appSpecProblem(spec: AppSpec, path: string): { field: string; text: string } | undefined {
  if (spec.image === undefined && spec.command === undefined) {
    return { field: `${path}.image`, text: 'or command: one must be set (an image to run, or a command for a process app)' };
  }
  if (spec.command !== undefined && spec.command.length === 0) return { field: `${path}.command`, text: 'must not be empty' };
  const lineBreak = lineBreakProblem(spec.entrypoint, `${path}.entrypoint`) ?? lineBreakProblem(spec.command, `${path}.command`);
  if (lineBreak !== undefined) return lineBreak;
  for (const resource of ['cpuMillis', 'memoryBytes'] as const) {
    const reserved = spec.reservations[resource];
    const limit = spec.limits[resource];
    if (reserved !== undefined && limit !== undefined && reserved > limit) {
      return { field: `${path}.reservations.${resource}`, text: `must not exceed limits.${resource} (${reserved} > ${limit})` };
    }
  }
  return duplicatePortProblem(spec, path) ?? duplicateTargetProblem(spec, path) ?? processContainerProblem(spec, path) ?? configsProblem(spec, path) ?? networkAliasesProblem(spec, path);
}

/** Aliases per network: each on one of the app's networks, each network once. */
function networkAliasesProblem(spec: AppSpec, path: string): { field: string; text: string } | undefined {
  const networks = specNetworks(spec);
  const seen = new Set<string>();
  for (const [position, entry] of (spec.hivemind.networkAliases ?? []).entries()) {
    const field = `${path}.hivemind.networkAliases[${position}].network`;
    if (!networks.includes(entry.network)) return { field, text: `"${entry.network}" is not one of the app's networks (${networks.join(', ')}); give an alias on a network the app joins` };
    if (seen.has(entry.network)) return { field, text: `names network "${entry.network}" twice; list each network's aliases once` };
    seen.add(entry.network);
  }
  return undefined;
}

/** Configs: image apps only, each target once (and not a volume's), a single file alone, within the size and count limits together. */
function configsProblem(spec: AppSpec, path: string): { field: string; text: string } | undefined {
  if (spec.configs === undefined) return undefined;
  if (spec.image === undefined) return { field: `${path}.configs`, text: 'applies only to an image app; a process app reads its files where it runs' };
  let bytes = 0;
  let files = 0;
  const targets = new Set(spec.volumes.map((mount) => mount.target));
  for (const [position, config] of spec.configs.entries()) {
    if (targets.has(config.target)) return { field: `${path}.configs[${position}].target`, text: `mounts ${config.target}, which another config or a volume mounts too` };
    targets.add(config.target);
    const single = config.files.some((file) => file.path === '');
    if (single && config.files.length !== 1) return { field: `${path}.configs[${position}].files`, text: 'has a file with path "" (a single file) beside others' };
    files += config.files.length;
    for (const file of config.files) bytes += Math.floor((file.data.length * 3) / 4) - (file.data.endsWith('==') ? 2 : file.data.endsWith('=') ? 1 : 0);
  }
  if (files > LIMITS.configFilesMax) return { field: `${path}.configs`, text: `have ${files} files; an app may have at most ${LIMITS.configFilesMax}` };
  if (bytes > LIMITS.configBytesMax) return { field: `${path}.configs`, text: `come to ${bytes} bytes; an app's configs may have at most ${LIMITS.configBytesMax} bytes together (keep data in a named volume)` };
  return undefined;
}

/** A process app has no namespaces of its own: of the container settings it takes `ulimits` alone. */
function processContainerProblem(spec: AppSpec, path: string): { field: string; text: string } | undefined {
  if (spec.image !== undefined || spec.container === undefined) return undefined;
  for (const key of ['hostname', 'init', 'tmpfs', 'capAdd', 'capDrop', 'extraHosts'] as const) {
    if (spec.container[key] !== undefined) return { field: `${path}.container.${key}`, text: 'applies only to an image app; a process app runs in the node\'s own namespaces' };
  }
  return undefined;
}

/** Flags after which an argument is a script, which may span lines (`sh -c`, `python -c`, `node -e`, `perl -e`). */
const SCRIPT_FLAGS: ReadonlySet<string> = new Set(['-c', '-e']);

/**
 * A line break in an argument is refused unless the argument is a script
 * (it follows -c or -e): anywhere else it is a slip of the app file (a
 * folded YAML string) that would run a program with a name or an argument
 * nobody meant, and it breaks the lines of `ps` and of the history.
 */
function lineBreakProblem(argv: string[] | undefined, path: string): { field: string; text: string } | undefined {
  if (argv === undefined) return undefined;
  for (const [position, argument] of argv.entries()) {
    if (!/[\r\n]/.test(argument)) continue;
    if (position > 0 && SCRIPT_FLAGS.has(argv[position - 1]!)) continue;
    return {
      field: `${path}[${position}]`,
      text: `contains a line break (${JSON.stringify(argument.length > 40 ? `${argument.slice(0, 37)}...` : argument)}); only a script after -c or -e may span lines: split it into arguments, or run it with ["sh", "-c", "..."]`,
    };
  }
  return undefined;
}

function duplicatePortProblem(spec: AppSpec, path: string): { field: string; text: string } | undefined {
  const published = new Set<string>();
  for (const [position, portSpec] of spec.ports.entries()) {
    if (portSpec.published === undefined) continue;
    const key = `${portSpec.published}/${portSpec.protocol}`;
    if (published.has(key)) return { field: `${path}.ports[${position}].published`, text: `publishes ${key} twice; publish each port once` };
    published.add(key);
  }
  return undefined;
}

function duplicateTargetProblem(spec: AppSpec, path: string): { field: string; text: string } | undefined {
  const targets = new Set<string>();
  for (const [position, mount] of spec.volumes.entries()) {
    if (targets.has(mount.target)) return { field: `${path}.volumes[${position}].target`, text: `mounts ${mount.target} twice; mount each path once` };
    targets.add(mount.target);
  }
  return undefined;
}

/** An app spec, each field and then the rules across fields. */
export const appSpec = refine(appSpecShape, appSpecProblem);

/** An IPv4 CIDR whose address has no host bits set (`10.0.0.0/8`, not `10.0.0.1/8`). */
const cidr = refine(text({ bytesMin: 9, bytesMax: 18, pattern: /^[0-9.]+\/[0-9]{1,2}$/, patternHint: 'an IPv4 CIDR like 10.0.0.0/8' }), (value, path) => {
  const parsed = parseCidr(value);
  return parsed.ok ? undefined : { field: path, text: parsed.reason };
});

/** A network an `app.deploy-many` makes when missing (`DeployNetwork`). */
export const deployNetwork = object<DeployNetwork>({ tenant: name, name, cidr: optional(cidr) });

/** A network policy's ingress rule. */
export const policyRule = object<PolicyRule>({
  fromApps: optional(names),
  fromTenants: optional(names),
  fromCidrs: optional(list(cidr, { max: LIMITS.namesMax, unique: true })),
  ports: optional(list(port, { max: LIMITS.portsMax, unique: true })),
});

/** A network policy's egress rule. */
export const egressRule = object<EgressRule>({
  toApps: optional(names),
  toTenants: optional(names),
  toCidrs: optional(list(cidr, { max: LIMITS.namesMax, unique: true })),
  ports: optional(list(port, { max: LIMITS.portsMax, unique: true })),
});

/** A config key. */
export const kvKey = text({ bytesMin: 1, bytesMax: LIMITS.kvKeyBytesMax });

/**
 * A config key on its own (from a URL path), checked as kv.put and
 * kv.delete check theirs; the error names the field `key` and no command.
 */
export function validateKvKey(key: unknown): { ok: true; value: string } | { ok: false; error: StateError } {
  return kvKey(key, 'key');
}
/** A GCM nonce. */
export const nonce = bytes({ bytesMin: LIMITS.sealNonceBytes, bytesMax: LIMITS.sealNonceBytes });
/** An issued certificate: serial, expiry, issuer. */
export const certificateRecord = object<CertificateRecord>({
  serial: text({ bytesMin: 1, bytesMax: 64, pattern: /^[0-9A-F]+$/, patternHint: 'a certificate serial in upper-case hex' }),
  notAfter: integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  issuer: optional(text({ bytesMin: 64, bytesMax: 64, pattern: /^[0-9a-f]{64}$/, patternHint: 'a SHA-256 fingerprint in lowercase hex' })),
});

/** An IPv4 address in dotted decimal, or an IPv6 address in text form (no zone). Pure: node:net's isIP is not allowed here. */
export function isIpAddress(input: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(input);
  if (v4) return v4.slice(1).every((octet) => Number(octet) <= 255 && (octet === '0' || !octet.startsWith('0')));
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(input) || !input.includes(':')) return false;
  const halves = input.split('::');
  if (halves.length > 2) return false;
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const groups = halves.flatMap(groupsOf);
  const last = groups[groups.length - 1] ?? '';
  const embeddedV4 = last.includes('.');
  if (embeddedV4 && !isIpAddress(last)) return false;
  const hexGroups = embeddedV4 ? groups.slice(0, -1) : groups;
  if (!hexGroups.every((group) => /^[0-9a-fA-F]{1,4}$/.test(group))) return false;
  const width = hexGroups.length + (embeddedV4 ? 2 : 0);
  return halves.length === 2 ? width <= 7 : width === 8;
}

const ipAddress = refine(text({ bytesMin: 2, bytesMax: 45 }), (value, path) =>
  isIpAddress(value) ? undefined : { field: path, text: `must be an IP address (IPv4 such as 10.0.0.5, or IPv6), got "${value}"` },
);

/** Where a running instance is reachable: an address and its ports, each target once. */
export const instanceEndpoint = refine(
  object<InstanceEndpoint>({
    address: ipAddress,
    ports: list(object<EndpointPort>({ target: port, port, protocol: oneOf(['tcp', 'udp']) }), { max: LIMITS.portsMax }),
    addresses: optional(list(ipAddress, { min: 2, max: APP_NETWORKS_MAX, unique: true })),
  }),
  (value, path) => {
    const seen = new Set<string>();
    for (const [index, entry] of value.ports.entries()) {
      const key = `${entry.target}/${entry.protocol}`;
      if (seen.has(key)) return { field: `${path}.ports[${index}]`, text: `repeats target port ${key}` };
      seen.add(key);
    }
    if (value.addresses !== undefined && value.addresses[0] !== value.address) return { field: `${path}.addresses[0]`, text: `must be the endpoint's address ${value.address}, got ${value.addresses[0]}` };
    return undefined;
  },
);

/** An instance's state. */
export const instanceState = oneOf(['pending', 'starting', 'running', 'healthy', 'unhealthy', 'exited', 'oom-killed', 'failed', 'stopped']);

type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;

/** The first repeated id in `items` (a batch names each instance once). */
export function repeatedId(items: { id: string }[], key: string): { field: string; text: string } | undefined {
  const seen = new Set<string>();
  for (const [position, item] of items.entries()) {
    if (seen.has(item.id)) return { field: `${key}[${position}].id`, text: `repeats instance "${item.id}"; list each instance once` };
    seen.add(item.id);
  }
  return undefined;
}

/** A node address (`host:port`): not empty, no spaces. */
export function nonEmptyAddress(): Parser<string> {
  return text({ bytesMin: 1, bytesMax: LIMITS.identifierBytesMax, pattern: /^\S+$/, patternHint: 'an address without spaces' });
}

