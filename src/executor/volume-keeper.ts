/**
 * What the executor does with node-local volumes (see local-volumes.ts):
 *
 * - before an instance starts, every named volume it mounts is made ready on
 *   this node: bound to this node in the cluster state first (`volume.bind`,
 *   so two nodes that both try a fresh volume agree on one), then created on
 *   first use, or mounted again after a reboot;
 * - a sweep, at start and now and then, mounts again the volumes bound here,
 *   and removes the backing files of volumes the state no longer has (once
 *   no workload holds them).
 *
 * Binding before creating means a node whose bind lost never creates data,
 * and a node whose creation failed after its bind keeps the volume: the
 * instance is placed there again (the scheduler follows the binding) and the
 * creation is tried again.
 */
import { chmod, chown, lstat } from 'node:fs/promises';
import type { ClusterStateMachine } from '../state/machine.js';
import type { AppSpec, Command, CommandResult } from '../state/types.js';
import { LocalVolumes, VolumeError, type LocalVolumeFile } from './local-volumes.js';

export interface VolumeKeeperOptions {
  machine: ClusterStateMachine;
  nodeId: string;
  /** `<dataDir>/volumes`. */
  volumesDir: string;
  submit: (command: Command) => Promise<CommandResult>;
  /** Whether the local replica has caught up with the log; the sweep removes nothing before. */
  caughtUp: () => boolean;
  log: (line: string) => void;
}

/** Why the volumes of an instance are not ready; `retry`: trying the start again later may succeed. */
export type VolumesReady = { ok: true } | { ok: false; message: string; retry: boolean };

/** Node-local volumes for the executor (see the module comment). */
export class VolumeKeeper {
  readonly volumes: LocalVolumes;
  private readonly options: VolumeKeeperOptions;
  private sweeping = false;

  constructor(options: VolumeKeeperOptions) {
    this.options = options;
    this.volumes = new LocalVolumes({ volumesDir: options.volumesDir, log: options.log });
  }

  /**
   * Makes every named volume `spec` mounts ready on this node. Host paths are
   * left as they are. With `owner`, each volume's root becomes that user's
   * with mode 0700 (its tenant's user: no other tenant's process reaches it).
   */
  async prepare(spec: AppSpec, owner?: { uid: number; gid: number }): Promise<VolumesReady> {
    const { machine, nodeId } = this.options;
    for (const mount of spec.volumes) {
      if (mount.source.startsWith('/')) continue;
      const what = `volume "${mount.source}" of tenant "${spec.tenant}"`;
      const volume = machine.volume(spec.tenant, mount.source);
      if (volume === undefined) return { ok: false, message: `${what} does not exist (create it with \`hivemind volumes create ${mount.source} --size SIZE\`)`, retry: false };
      if (volume.node !== undefined && volume.node !== nodeId) {
        return { ok: false, message: `${what} lives on node ${volume.node}, not on ${nodeId}; instances that mount it are placed there`, retry: false };
      }
      if (volume.node === undefined) {
        const bound = await this.options.submit({ type: 'volume.bind', tenant: spec.tenant, name: mount.source, node: nodeId }).catch((error: Error) => error);
        if (bound instanceof Error) return { ok: false, message: `${what}: cannot record it on this node: ${bound.message}`, retry: true };
        if (!bound.ok) return { ok: false, message: bound.error.message, retry: false };
      }
      try {
        const mountPath = await this.volumes.ensure({ tenant: spec.tenant, name: mount.source, createdIndex: volume.createdIndex, sizeBytes: volume.sizeBytes });
        if (owner !== undefined) await ownRoot(mountPath, owner);
      } catch (error) {
        return { ok: false, message: (error as Error).message, retry: true };
      }
    }
    return { ok: true };
  }

  /**
   * Mounts again the volumes bound here that are not mounted, and removes
   * the files of volumes deleted from the state. One sweep at a time; errors
   * are logged and the next sweep tries again; `retrySoon` says one failed
   * in a way that may pass in a moment (a workload still holding a volume
   * being removed).
   */
  async sweep(): Promise<{ retrySoon: boolean }> {
    if (this.sweeping) return { retrySoon: false };
    this.sweeping = true;
    let retrySoon = false;
    try {
      for (const file of await this.volumes.list()) {
        await this.sweepOne(file).catch((error: Error) => {
          this.options.log(error.message);
          if (error instanceof VolumeError && error.retryable) retrySoon = true;
        });
      }
    } finally {
      this.sweeping = false;
    }
    return { retrySoon };
  }

  private async sweepOne(file: LocalVolumeFile): Promise<void> {
    const { machine, nodeId } = this.options;
    const volume = machine.volume(file.tenant, file.name);
    if (volume !== undefined && volume.createdIndex === file.createdIndex) {
      if (volume.node === nodeId) await this.volumes.ensure({ ...file, sizeBytes: volume.sizeBytes });
      return;
    }
    // A file of a volume this replica has not applied yet is not garbage.
    if (!this.options.caughtUp() || file.createdIndex > machine.appliedIndex) return;
    await this.volumes.remove(file);
  }
}

/** Gives a mounted volume's root to its tenant's user, mode 0700 (a no-op when it is so already). */
async function ownRoot(mountPath: string, owner: { uid: number; gid: number }): Promise<void> {
  const stat = await lstat(mountPath);
  if (stat.uid !== owner.uid || stat.gid !== owner.gid) await chown(mountPath, owner.uid, owner.gid);
  if ((stat.mode & 0o7777) !== 0o700) await chmod(mountPath, 0o700);
}
