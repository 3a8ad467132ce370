/**
 * Building a runtime's `WorkloadSpec` from an instance and its version's app
 * spec: the argv, environment, stop settings, mounts, and secrets opened
 * with the cluster key. Pure but for the secret decryption (node:crypto).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ClusterStateMachine } from '../state/machine.js';
import { specNetworks } from '../state/app-networks.js';
import { openSecret, secretAssociatedData } from '../state/secrets.js';
import type { AppSpec, Instance } from '../state/types.js';
import type { DeviceIoLimit, Mount, SecretFile, WorkloadSpec } from './runtime.js';

/** Compose's default stop grace period. */
export const STOP_GRACE_MS_DEFAULT = 10_000;
export const STOP_SIGNAL_DEFAULT = 'SIGTERM';

export interface WorkloadInputs {
  instance: Instance;
  spec: AppSpec;
  machine: ClusterStateMachine;
  /** The cluster key, to open secrets; undefined when this node has none (then apps with secrets fail). */
  clusterKey: Uint8Array | undefined;
  logPath: string;
  /** Where named volumes live on this node (`<dataDir>/volumes`). */
  volumesDir: string;
  /** The I/O limits of the volumes' devices (VolumeKeeper.prepare); absent: none. */
  ioLimits?: DeviceIoLimit[];
  /** `host:port` of this node's DNS server for process apps (`HIVEMIND_DNS`); containers get it in their resolv.conf. */
  dnsAddress?: string;
  /** The tenant's user, which a process workload runs as (see tenant-users.ts); absent: `user` or the agent's. */
  runAs?: { uid: number; gid: number };
}

/**
 * The networks of the spec that exist in the state: a tenant made before the
 * pool has no `default`, and its containers stay on the node subnet (none
 * left) rather than wait for a network that will never be listed.
 */
function existingNetworks(machine: ClusterStateMachine, tenant: string, names: readonly string[]): string[] {
  const held = new Set(machine.networks().flatMap((network) => (network.tenant === tenant ? [network.name] : [])));
  return names.filter((name) => held.has(name));
}

/** The workload, or a message saying why the instance cannot run. */
export function buildWorkload(inputs: WorkloadInputs): { ok: true; workload: WorkloadSpec } | { ok: false; message: string } {
  const { instance, spec } = inputs;
  const secrets = openSecrets(inputs);
  if (!secrets.ok) return secrets;
  // A container binds each volume at its target. A process app has no mount namespace of its own: it
  // finds each named volume's path in HIVEMIND_VOLUME_<NAME> instead (host paths stay refused for it).
  const mounts: Mount[] = [];
  const volumePaths: Record<string, string> = {};
  for (const volume of spec.volumes) {
    const named = !volume.source.startsWith('/');
    const source = named ? join(inputs.volumesDir, spec.tenant, volume.source) : volume.source;
    if (named && spec.image === undefined) volumePaths[volumeVariable(volume.source)] = source;
    else mounts.push({ source, target: volume.target, readOnly: volume.readOnly });
  }
  const workload: WorkloadSpec = {
    id: instance.id,
    tenant: instance.tenant,
    networks: existingNetworks(inputs.machine, instance.tenant, specNetworks(spec)),
    app: instance.app,
    version: instance.version,
    specHash: specHash(spec),
    ...(spec.image !== undefined ? { image: spec.image } : {}),
    ...(spec.command !== undefined ? { command: spec.command } : {}),
    ...(spec.entrypoint !== undefined ? { entrypoint: spec.entrypoint } : {}),
    environment: {
      ...spec.environment,
      HIVEMIND_INSTANCE: instance.id,
      HIVEMIND_APP: instance.app,
      HIVEMIND_TENANT: instance.tenant,
      HIVEMIND_SLOT: String(instance.slot),
      HIVEMIND_VERSION: String(instance.version),
      ...(spec.image === undefined && inputs.dnsAddress !== undefined ? { HIVEMIND_DNS: inputs.dnsAddress } : {}),
      ...volumePaths,
    },
    ...(spec.workingDir ? { workingDir: spec.workingDir } : {}),
    ...(spec.user && inputs.runAs === undefined ? { user: spec.user } : {}),
    ...(inputs.runAs !== undefined && spec.image === undefined ? { runAs: inputs.runAs } : {}),
    readOnly: spec.readOnly,
    ports: spec.ports,
    limits: spec.limits,
    mounts,
    ...(inputs.ioLimits !== undefined && inputs.ioLimits.length > 0 ? { ioLimits: inputs.ioLimits } : {}),
    secrets: secrets.files,
    logPath: inputs.logPath,
    stopSignal: spec.stopSignal ?? STOP_SIGNAL_DEFAULT,
    stopGraceMs: spec.stopGraceMs ?? STOP_GRACE_MS_DEFAULT,
    ...(spec.container !== undefined ? { container: spec.container } : {}),
    ...(spec.configs !== undefined ? { configs: spec.configs } : {}),
    labels: {
      ...spec.labels,
      'hivemind.instance': instance.id,
      'hivemind.tenant': instance.tenant,
      'hivemind.app': instance.app,
      'hivemind.version': String(instance.version),
    },
  };
  return { ok: true, workload };
}

/** The environment variable that gives a process app the path of named volume `name` (`data-dir` -> `HIVEMIND_VOLUME_DATA_DIR`). */
export function volumeVariable(name: string): string {
  return `HIVEMIND_VOLUME_${name.toUpperCase().replaceAll('-', '_')}`;
}

function openSecrets(inputs: WorkloadInputs): { ok: true; files: SecretFile[] } | { ok: false; message: string } {
  const names = inputs.spec.hivemind.secrets ?? [];
  const files: SecretFile[] = [];
  for (const name of names) {
    const sealed = inputs.machine.secretCiphertext(inputs.spec.tenant, name);
    if (sealed === undefined) return { ok: false, message: `secret "${name}" of tenant "${inputs.spec.tenant}" does not exist (create it with \`hivemind secret create ${name}\`)` };
    if (inputs.clusterKey === undefined) return { ok: false, message: `secret "${name}": this node has no cluster key to open it` };
    const opened = openSecret(inputs.clusterKey, sealed, secretAssociatedData(inputs.spec.tenant, name));
    if (!opened.ok) return { ok: false, message: `secret "${name}" cannot be opened: ${opened.error.message}` };
    files.push({ name, value: opened.plaintext });
  }
  return { ok: true, files };
}

/** A stable hash of the spec (keys sorted), so equal specs give equal hashes. */
export function specHash(spec: AppSpec): string {
  return createHash('sha256').update(stableJson(spec)).digest('hex').slice(0, 16);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, inner]) => inner !== undefined)
      .sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
    return `{${entries.map(([key, inner]) => `${JSON.stringify(key)}:${stableJson(inner)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
