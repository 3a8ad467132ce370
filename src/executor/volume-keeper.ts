/**
 * What the executor does with node-local volumes (see local-volumes.ts):
 *
 * - before an instance starts, every named volume it mounts is made ready on
 *   this node: bound to this node in the cluster state first (`volume.bind`,
 *   so two nodes that both try a fresh volume agree on one), then created on
 *   first use, or mounted again after a reboot;
 * - a sweep, at start and now and then, mounts again the volumes bound here,
 *   reports what each takes on disk (`volume.report`, when that changed), and
 *   removes the backing files of volumes the state no longer has or that
 *   were moved to another node (once no workload holds them);
 * - snapshots, backups (archives of a frozen copy's files) and restores, for
 *   the API routes of the volume's node (see volume-archive.ts); a move's
 *   target receives the data the same way a restore does.
 *
 * Binding before creating means a node whose bind lost never creates data,
 * and a node whose creation failed after its bind keeps the volume: the
 * instance is placed there again (the scheduler follows the binding) and the
 * creation is tried again.
 */
import { chmod, chown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterStateMachine } from '../state/machine.js';
import type { AppSpec, Command, CommandResult, Volume } from '../state/types.js';
import { openSecret, volumeKeyAssociatedData } from '../state/secrets.js';
import { isSnapshotId, LocalVolumes, VolumeError, type LocalVolumeFile, type VolumeSnapshot, type VolumeToEnsure } from './local-volumes.js';
import type { DeviceIoLimit } from './runtime.js';
import { archiveImage, beginWork, cleanWork, endWork, extractArchive } from './volume-archive.js';

/** A volume's usage is reported again once it changed by this much (or by REPORT_CHANGE_FRACTION_MIN of it), so writes do not flood the log. */
export const REPORT_CHANGE_BYTES_MIN = 1024 ** 2;
const REPORT_CHANGE_FRACTION_MIN = 0.01;
/** How often a move's source looks whether the volume's workloads have stopped. */
const MOVE_POLL_MS = 200;

/** Whether a usage of `usedBytes` is worth a `volume.report` over the recorded `reportedBytes`. Pure. */
export function reportDue(reportedBytes: number | undefined, usedBytes: number): boolean {
  if (reportedBytes === undefined) return true;
  const change = Math.abs(usedBytes - reportedBytes);
  return change >= REPORT_CHANGE_BYTES_MIN || change >= reportedBytes * REPORT_CHANGE_FRACTION_MIN;
}

export interface VolumeKeeperOptions {
  machine: ClusterStateMachine;
  nodeId: string;
  /** `<dataDir>/volumes`. */
  volumesDir: string;
  submit: (command: Command) => Promise<CommandResult>;
  /** Whether the local replica has caught up with the log; the sweep removes nothing before. */
  caughtUp: () => boolean;
  /** The workloads on this node (running, starting or stopping) that mount the volume. */
  workloadsUsing: (tenant: string, name: string) => string[];
  /** The cluster key, which opens encrypted volumes' keys; undefined when this node has none. */
  clusterKey: () => Uint8Array | undefined;
  log: (line: string) => void;
}

/**
 * The volumes of an instance are ready, with the I/O limits of their devices
 * (those with limits); or why not, `retry`: trying the start again later may succeed.
 */
export type VolumesReady = { ok: true; ioLimits: DeviceIoLimit[] } | { ok: false; message: string; retry: boolean };

/** Node-local volumes for the executor (see the module comment). */
export class VolumeKeeper {
  readonly volumes: LocalVolumes;
  private readonly options: VolumeKeeperOptions;
  /** The sweep that runs, if one does. */
  private sweeping: Promise<{ retrySoon: boolean }> | undefined;
  /** The sweep that follows it, asked for while it runs. */
  private nextSweep: Promise<{ retrySoon: boolean }> | undefined;

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
    const ioLimits: DeviceIoLimit[] = [];
    for (const mount of spec.volumes) {
      if (mount.source.startsWith('/')) continue;
      const what = `volume "${mount.source}" of tenant "${spec.tenant}"`;
      const volume = machine.volume(spec.tenant, mount.source);
      if (volume === undefined) return { ok: false, message: `${what} does not exist (create it with \`hivemind volumes create ${mount.source} --size SIZE\`)`, retry: false };
      if (volume.moving !== undefined) return { ok: false, message: `${what} is being moved to node ${volume.moving}; instances that mount it start once it is there`, retry: true };
      if (volume.node !== undefined && volume.node !== nodeId) {
        return { ok: false, message: `${what} lives on node ${volume.node}, not on ${nodeId}; instances that mount it are placed there`, retry: false };
      }
      if (volume.node === undefined) {
        const bound = await this.options.submit({ type: 'volume.bind', tenant: spec.tenant, name: mount.source, node: nodeId }).catch((error: Error) => error);
        if (bound instanceof Error) return { ok: false, message: `${what}: cannot record it on this node: ${bound.message}`, retry: true };
        if (!bound.ok) return { ok: false, message: bound.error.message, retry: false };
      }
      try {
        const mountPath = await this.volumes.ensure(this.toEnsure(volume));
        if (owner !== undefined) await ownRoot(mountPath, owner);
      } catch (error) {
        return { ok: false, message: (error as Error).message, retry: true };
      }
      if (volume.io === undefined) continue;
      const device = await this.volumes.deviceOf(spec.tenant, mount.source);
      if (device === undefined) return { ok: false, message: `${what}: its loop device is not found, so its I/O limits cannot be applied`, retry: true };
      ioLimits.push({ ...device, ...volume.io });
    }
    return { ok: true, ioLimits };
  }

  /**
   * Mounts again the volumes bound here that are not mounted, and removes
   * the files of volumes deleted from the state. One sweep at a time: a call
   * while one runs (which may have listed the files already) gets the next
   * sweep, started once that one ends and shared by every call meanwhile,
   * so what a caller changed before calling is always seen. Errors are logged
   * and the next sweep tries again; `retrySoon` says one failed in a way that
   * may pass in a moment (a workload still holding a volume being removed).
   */
  sweep(): Promise<{ retrySoon: boolean }> {
    if (this.sweeping === undefined) {
      this.sweeping = this.sweepOnce().finally(() => (this.sweeping = undefined));
      return this.sweeping;
    }
    const next = (): Promise<{ retrySoon: boolean }> => {
      this.nextSweep = undefined;
      return this.sweep();
    };
    this.nextSweep ??= this.sweeping.then(next, next);
    return this.nextSweep;
  }

  private async sweepOnce(): Promise<{ retrySoon: boolean }> {
    let retrySoon = false;
    for (const file of await this.volumes.list()) {
      await this.sweepOne(file).catch((error: Error) => {
        this.options.log(error.message);
        if (error instanceof VolumeError && error.retryable) retrySoon = true;
      });
    }
    return { retrySoon };
  }

  private async sweepOne(file: LocalVolumeFile): Promise<void> {
    const { machine, nodeId } = this.options;
    const volume = machine.volume(file.tenant, file.name);
    if (volume !== undefined && volume.createdIndex === file.createdIndex) {
      if (volume.node === nodeId && volume.moving === undefined) {
        await this.volumes.ensure(this.toEnsure(volume));
        await this.maybeReport(volume);
        return;
      }
      // Leaving (copied from here) or arriving (copied to here): the move ends it. Unbound: never made here.
      if (volume.node === nodeId || volume.moving === nodeId || volume.node === undefined) return;
      // Moved to another node: this copy is stale once the replica has caught up.
      if (!this.options.caughtUp()) return;
      await this.volumes.remove(file);
      return;
    }
    // A file of a volume this replica has not applied yet is not garbage.
    if (!this.options.caughtUp() || file.createdIndex > machine.appliedIndex) return;
    await this.volumes.remove(file);
  }

  private async maybeReport(volume: Volume): Promise<void> {
    const usedBytes = await this.volumes.usedBytes(volume);
    if (usedBytes === undefined || !reportDue(volume.usedBytes, usedBytes)) return;
    const result = await this.options.submit({ type: 'volume.report', tenant: volume.tenant, name: volume.name, createdIndex: volume.createdIndex, node: this.options.nodeId, usedBytes });
    if (!result.ok) this.options.log(`the usage report of volume "${volume.name}" of tenant "${volume.tenant}" was refused: ${result.error.message}`);
  }

  /**
   * What LocalVolumes needs to make `volume` ready: its identity, size, and
   * key when it is encrypted (opened here from its sealed form). Throws a
   * VolumeError when the key cannot be opened.
   */
  private toEnsure(volume: Volume): VolumeToEnsure {
    const identity = { tenant: volume.tenant, name: volume.name, createdIndex: volume.createdIndex, sizeBytes: volume.sizeBytes };
    if (volume.encryption === undefined) return identity;
    const what = `volume "${volume.name}" of tenant "${volume.tenant}"`;
    const clusterKey = this.options.clusterKey();
    if (clusterKey === undefined) throw new VolumeError(`${what} is encrypted, and this node has no cluster key to open its key`, false);
    const opened = openSecret(clusterKey, volume.encryption, volumeKeyAssociatedData(volume.tenant, volume.name));
    if (!opened.ok) throw new VolumeError(`${what}: its key: ${opened.error.message}`, false);
    return { ...identity, key: opened.plaintext };
  }

  /** Removes what an interrupted backup left (see cleanWork). */
  cleanWork(): Promise<void> {
    return cleanWork(this.options.volumesDir, this.options.log);
  }

  /** The volume's record, when its data is on this node (bound here, not moving away); else a VolumeError saying where it is. */
  private local(tenant: string, name: string): Volume {
    const volume = this.options.machine.volume(tenant, name);
    const what = `volume "${name}" of tenant "${tenant}"`;
    if (volume === undefined) throw new VolumeError(`${what} does not exist`, false);
    if (volume.node !== this.options.nodeId) throw new VolumeError(`${what} ${volume.node === undefined ? 'holds no data yet (no instance has used it)' : `lives on node ${volume.node}, not on ${this.options.nodeId}`}`, false);
    if (volume.moving !== undefined) throw new VolumeError(`${what} is being moved to node ${volume.moving}`, true);
    return volume;
  }

  /** Takes a snapshot of a volume held here: a frozen copy kept beside it. Throws VolumeError. */
  async snapshot(tenant: string, name: string, nowMs: number): Promise<VolumeSnapshot> {
    const volume = this.local(tenant, name);
    await this.volumes.ensure(this.toEnsure(volume));
    return this.volumes.snapshot(volume, nowMs);
  }

  /** The snapshots of a volume held here, oldest first. */
  async snapshots(tenant: string, name: string): Promise<VolumeSnapshot[]> {
    return this.volumes.snapshots(this.local(tenant, name));
  }

  /** Deletes a snapshot of a volume held here; false when it has none of that id. */
  async deleteSnapshot(tenant: string, name: string, id: string): Promise<boolean> {
    return this.volumes.deleteSnapshot(this.local(tenant, name), id);
  }

  /**
   * The files of a volume held here as a tar.zst stream: of snapshot
   * `snapshotId`, or of a frozen copy taken now. A volume that is moving
   * away may be read too (`forMove`: the move reads it). Throws VolumeError
   * before the first byte when it cannot start.
   */
  async backup(tenant: string, name: string, options: { snapshotId?: string; forMove?: boolean } = {}): Promise<AsyncIterable<Uint8Array>> {
    const volume = options.forMove ? this.moving(tenant, name) : this.local(tenant, name);
    const what = `volume "${name}" of tenant "${tenant}"`;
    const work = await beginWork(this.options.volumesDir);
    try {
      let imagePath: string;
      if (options.snapshotId !== undefined) {
        imagePath = this.volumes.snapshotPathOf(volume, options.snapshotId);
        if (!isSnapshotId(options.snapshotId) || !(await this.volumes.snapshots(volume)).some((snapshot) => snapshot.id === options.snapshotId)) {
          throw new VolumeError(`${what} has no snapshot ${JSON.stringify(options.snapshotId)} (list them with \`hivemind volumes snapshots ${name}\`)`, false);
        }
      } else {
        imagePath = join(work, 'copy.ext4');
        await this.volumes.copyFrozen(volume, imagePath);
      }
      const { key } = this.toEnsure(volume);
      return archiveImage({ work, imagePath, what, log: this.options.log, ...(key !== undefined ? { key } : {}) });
    } catch (error) {
      await endWork(work);
      throw error;
    }
  }

  /**
   * A move's source: waits until no workload here mounts the volume any more
   * (`volume.move` unplaced them; the executor stops them), up to
   * `waitMs`, then answers the archive of its files, as `backup` does.
   * Throws VolumeError when the volume is not moving away from here, or
   * still used when the time is up.
   */
  async archiveForMove(tenant: string, name: string, options: { waitMs: number; sleep: (ms: number) => Promise<void>; nowMs: () => number }): Promise<AsyncIterable<Uint8Array>> {
    this.moving(tenant, name);
    const deadlineMs = options.nowMs() + options.waitMs;
    for (;;) {
      const using = this.options.workloadsUsing(tenant, name);
      if (using.length === 0) break;
      if (options.nowMs() >= deadlineMs) {
        throw new VolumeError(`volume "${name}" of tenant "${tenant}": ${using.join(', ')} still ${using.length === 1 ? 'runs' : 'run'} on node ${this.options.nodeId} after ${options.waitMs / 1000} s; try again once ${using.length === 1 ? 'it has' : 'they have'} stopped`, true);
      }
      await options.sleep(MOVE_POLL_MS);
    }
    return this.backup(tenant, name, { forMove: true });
  }

  private moving(tenant: string, name: string): Volume {
    const volume = this.options.machine.volume(tenant, name);
    if (volume === undefined || volume.node !== this.options.nodeId || volume.moving === undefined) {
      throw new VolumeError(`volume "${name}" of tenant "${tenant}" is not being moved away from node ${this.options.nodeId}`, false);
    }
    return volume;
  }

  /**
   * A move's target: fills the volume moving here with the files of a
   * tar.zst stream. Whatever an earlier try left here is removed first, so
   * the data is exactly the archive's. Throws VolumeError.
   */
  async receive(tenant: string, name: string, body: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    const what = `volume "${name}" of tenant "${tenant}"`;
    const volume = this.options.machine.volume(tenant, name);
    if (volume === undefined) throw new VolumeError(`${what} does not exist`, false);
    if (volume.moving !== this.options.nodeId) throw new VolumeError(`${what} is not being moved to node ${this.options.nodeId}`, false);
    await this.volumes.remove(volume);
    const mountPath = await this.volumes.ensure(this.toEnsure(volume));
    await extractArchive({ mountPath, body, what, ...(signal ? { signal } : {}) });
    this.options.log(`${what}: received its data`);
  }

  /**
   * Restores a tar.zst stream into a new volume: one with no data yet (bound
   * to this node now, made here) or bound here and still empty. Never
   * writes over files. Throws VolumeError.
   */
  async restore(tenant: string, name: string, body: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    const { machine, nodeId } = this.options;
    const what = `volume "${name}" of tenant "${tenant}"`;
    const volume = machine.volume(tenant, name);
    if (volume === undefined) throw new VolumeError(`${what} does not exist (create it first: \`hivemind volumes create ${name} --size SIZE\`)`, false);
    if (volume.moving !== undefined) throw new VolumeError(`${what} is being moved to node ${volume.moving}`, true);
    if (volume.node !== undefined && volume.node !== nodeId) throw new VolumeError(`${what} lives on node ${volume.node}; restore there`, false);
    if (volume.node === undefined) {
      const bound = await this.options.submit({ type: 'volume.bind', tenant, name, node: nodeId });
      if (!bound.ok) throw new VolumeError(bound.error.message, false);
    }
    const mountPath = await this.volumes.ensure(this.toEnsure(volume));
    const present = (await readdir(mountPath)).filter((entry) => entry !== 'lost+found');
    if (present.length > 0) {
      throw new VolumeError(`${what} holds files already (${present.slice(0, 3).join(', ')}${present.length > 3 ? ', ...' : ''}); a restore goes into a new volume: create one and restore into it`, false);
    }
    await extractArchive({ mountPath, body, what, ...(signal ? { signal } : {}) });
    this.options.log(`${what}: restored from an archive`);
  }
}

/** Gives a mounted volume's root to its tenant's user, mode 0700 (a no-op when it is so already). */
async function ownRoot(mountPath: string, owner: { uid: number; gid: number }): Promise<void> {
  const stat = await lstat(mountPath);
  if (stat.uid !== owner.uid || stat.gid !== owner.gid) await chown(mountPath, owner.uid, owner.gid);
  if ((stat.mode & 0o7777) !== 0o700) await chmod(mountPath, 0o700);
}
