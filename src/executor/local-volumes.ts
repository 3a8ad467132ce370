/**
 * Node-local volumes: each is a sparse file holding its own ext4 filesystem,
 * attached to a loop device (`losetup -f --show`) and mounted under the data
 * directory, so the kernel enforces its size: a write past it fails with
 * ENOSPC inside the workload and nothing else on the node fills up.
 *
 * Layout, under `<dataDir>/volumes/<tenant>/`:
 *   `<name>.<createdIndex>.ext4`  the backing file (sparse: only written blocks use disk)
 *   `<name>/`                     its mount point, which workloads bind
 *   `<name>.cipher/`              an encrypted volume's filesystem (mode 0700), holding
 *                                 `data/`, the gocryptfs folder whose plain view is
 *                                 mounted at `<name>/` (see gocryptfs.ts)
 *   `<name>.<createdIndex>.snapshots/<id>.ext4`  snapshots: frozen copies of the backing file
 * The volume's `createdIndex` in the file name tells a volume from an older
 * one of the same name that was deleted and created again.
 *
 * Needs root, `mkfs.ext4` (e2fsprogs), `losetup` and `mount` (util-linux);
 * encrypted volumes also `gocryptfs` and `fusermount` (gocryptfs, fuse3).
 * Calls on the same volume run one at a time; different volumes in parallel.
 */
import { constants, existsSync } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CIPHER_FOLDER, initCipherFolder, mountPlainView, plainViewMounted, unmountPlainView } from './gocryptfs.js';
import { mountAt, mountSourceOf, tool, VolumeError } from './volume-tool.js';

export { mountSourceOf, VolumeError } from './volume-tool.js';

/** Which volume, as the cluster state names it. */
export interface VolumeIdentity {
  tenant: string;
  name: string;
  /** The Raft index that created the volume. */
  createdIndex: number;
}

/** A volume to make ready: its size, and its key when it is encrypted at rest. */
export interface VolumeToEnsure extends VolumeIdentity {
  sizeBytes: number;
  /** The volume's key (opened from its sealed form in the state); absent: not encrypted. */
  key?: Uint8Array;
}

/** A backing file found on disk. */
export interface LocalVolumeFile extends VolumeIdentity {
  imagePath: string;
}

export interface LocalVolumesOptions {
  /** `<dataDir>/volumes`. */
  volumesDir: string;
  log: (line: string) => void;
}

const IMAGE_SUFFIX = '.ext4';
const SNAPSHOTS_SUFFIX = '.snapshots';
/** A snapshot's id: its UTC time, to the millisecond, as a file name (`20261205T063000123Z`). */
const SNAPSHOT_ID_PATTERN = /^\d{8}T\d{9}Z$/;

/** A snapshot of a volume kept on its node. */
export interface VolumeSnapshot {
  /** The UTC time it was taken, as `20261205T063000123Z`; unique per volume. */
  id: string;
  /** When it was taken, ms since the epoch. */
  takenAtMs: number;
  /** The volume's size (the snapshot is a whole copy of its filesystem). */
  sizeBytes: number;
  /** What its file takes on disk. */
  usedBytes: number;
}

/** The snapshot id of the time `ms` (see VolumeSnapshot.id). */
export function snapshotIdOf(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

/** Whether `text` has the shape of a snapshot id (it names a file: nothing else may pass). */
export function isSnapshotId(text: string): boolean {
  return SNAPSHOT_ID_PATTERN.test(text);
}

function takenAtOf(id: string): number {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(id);
  return match === null ? 0 : Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6]), Number(match[7]));
}

/** Node-local volumes of one node (see the module comment). */
export class LocalVolumes {
  private readonly volumesDir: string;
  private readonly log: (line: string) => void;
  /** The operation running on each volume (by mount path), so calls on one volume queue. */
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(options: LocalVolumesOptions) {
    this.volumesDir = options.volumesDir;
    this.log = options.log;
  }

  /** Where the volume is mounted (and what workloads bind). */
  mountPathOf(tenant: string, name: string): string {
    return join(this.volumesDir, tenant, name);
  }

  /** Where an encrypted volume's own filesystem is mounted (its plain view is at mountPathOf). */
  cipherMountPathOf(tenant: string, name: string): string {
    return join(this.volumesDir, tenant, `${name}.cipher`);
  }

  /** The backing file of the volume. */
  imagePathOf(volume: VolumeIdentity): string {
    return join(this.volumesDir, volume.tenant, `${volume.name}.${volume.createdIndex}${IMAGE_SUFFIX}`);
  }

  /**
   * Makes the volume ready and answers its mount path: creates the backing
   * file and its filesystem on first use (`sizeBytes`, fixed from then on),
   * attaches and mounts it when it is not mounted (after a reboot), and does
   * nothing when it is. With a `key`, the files are kept encrypted (see
   * gocryptfs.ts) and the mount path is their plain view. Throws VolumeError.
   */
  ensure(volume: VolumeToEnsure): Promise<string> {
    return this.serialized(volume, () => this.ensureNow(volume));
  }

  /**
   * Unmounts the volume, detaches its loop devices and deletes its file and
   * mount point. Throws a retryable VolumeError while a workload still holds
   * the mount (EBUSY).
   */
  remove(volume: VolumeIdentity): Promise<void> {
    return this.serialized(volume, () => this.removeNow(volume));
  }

  /** Where the volume's snapshots are kept. */
  snapshotsDirOf(volume: VolumeIdentity): string {
    return join(this.volumesDir, volume.tenant, `${volume.name}.${volume.createdIndex}${SNAPSHOTS_SUFFIX}`);
  }

  /** The file of snapshot `id` of the volume (see isSnapshotId). */
  snapshotPathOf(volume: VolumeIdentity, id: string): string {
    return join(this.snapshotsDirOf(volume), `${id}${IMAGE_SUFFIX}`);
  }

  /**
   * What the volume takes on this node's disk: the allocated blocks of its
   * backing file and of its snapshots (not their sparse sizes); undefined
   * when its file is not here.
   */
  async usedBytes(volume: VolumeIdentity): Promise<number | undefined> {
    const image = await stat(this.imagePathOf(volume)).catch(() => undefined);
    if (image === undefined) return undefined;
    let used = image.blocks * 512;
    for (const snapshot of await this.snapshots(volume)) used += snapshot.usedBytes;
    return used;
  }

  /** The volume's snapshots on this node, oldest first. */
  async snapshots(volume: VolumeIdentity): Promise<VolumeSnapshot[]> {
    const found: VolumeSnapshot[] = [];
    for (const entry of (await readdir(this.snapshotsDirOf(volume)).catch(() => [] as string[])).sort()) {
      const id = entry.slice(0, -IMAGE_SUFFIX.length);
      if (!entry.endsWith(IMAGE_SUFFIX) || !isSnapshotId(id)) continue;
      const info = await stat(join(this.snapshotsDirOf(volume), entry)).catch(() => undefined);
      if (info !== undefined) found.push({ id, takenAtMs: takenAtOf(id), sizeBytes: info.size, usedBytes: info.blocks * 512 });
    }
    return found;
  }

  /**
   * Copies the volume's backing file to `destinationPath` (sparse: holes stay
   * holes), consistent: while its filesystem is mounted, it is frozen
   * (`fsfreeze`: writes wait, what was written is on the file) for the copy
   * and thawed after, whatever happens. Made as `….part`, then renamed.
   * Throws VolumeError (the volume has no file here, the copy failed).
   */
  copyFrozen(volume: VolumeIdentity, destinationPath: string): Promise<void> {
    return this.serialized(volume, () => this.copyFrozenNow(volume, destinationPath));
  }

  /** Takes a snapshot of the volume kept beside it (see copyFrozen), named by the time `nowMs`. */
  async snapshot(volume: VolumeIdentity, nowMs: number): Promise<VolumeSnapshot> {
    const id = snapshotIdOf(nowMs);
    const path = this.snapshotPathOf(volume, id);
    if (existsSync(path)) throw new VolumeError(`volume "${volume.name}" of tenant "${volume.tenant}" has a snapshot ${id} already; try again`, true);
    await mkdir(this.snapshotsDirOf(volume), { recursive: true, mode: 0o700 });
    await this.copyFrozen(volume, path);
    const info = await stat(path);
    return { id, takenAtMs: takenAtOf(id), sizeBytes: info.size, usedBytes: info.blocks * 512 };
  }

  /** Deletes snapshot `id` of the volume; false when there is none. */
  async deleteSnapshot(volume: VolumeIdentity, id: string): Promise<boolean> {
    if (!isSnapshotId(id)) return false;
    const path = this.snapshotPathOf(volume, id);
    if (!existsSync(path)) return false;
    await rm(path, { force: true });
    return true;
  }

  /** The major and minor numbers of the loop device the volume is mounted from; undefined when it is not mounted. */
  async deviceOf(tenant: string, name: string): Promise<{ major: number; minor: number } | undefined> {
    const plain = await mountSourceOf(this.mountPathOf(tenant, name));
    // An encrypted volume's mount path is its FUSE view; its device is under that.
    const device = plain !== undefined && plain.startsWith('/dev/') ? plain : await mountSourceOf(this.cipherMountPathOf(tenant, name));
    if (device === undefined || !device.startsWith('/dev/')) return undefined;
    const info = await stat(device).catch(() => undefined);
    return info?.isBlockDevice() ? deviceNumbers(info.rdev) : undefined;
  }

  /** The backing files on this node. */
  async list(): Promise<LocalVolumeFile[]> {
    const found: LocalVolumeFile[] = [];
    const tenants = await readdir(this.volumesDir, { withFileTypes: true }).catch(() => []);
    for (const tenant of tenants) {
      // Dot folders hold work in progress (backups being read), not tenants.
      if (!tenant.isDirectory() || tenant.name.startsWith('.')) continue;
      for (const entry of await readdir(join(this.volumesDir, tenant.name)).catch(() => [] as string[])) {
        const match = /^([a-z0-9-]+)\.(\d+)\.ext4$/.exec(entry);
        if (match === null) continue;
        found.push({ tenant: tenant.name, name: match[1]!, createdIndex: Number(match[2]), imagePath: join(this.volumesDir, tenant.name, entry) });
      }
    }
    return found;
  }

  private serialized<T>(volume: { tenant: string; name: string }, operation: () => Promise<T>): Promise<T> {
    const key = this.mountPathOf(volume.tenant, volume.name);
    const before = this.running.get(key) ?? Promise.resolve();
    const next = before.catch(() => undefined).then(operation);
    this.running.set(key, next);
    const forget = (): void => {
      if (this.running.get(key) === next) this.running.delete(key);
    };
    next.then(forget, forget);
    return next;
  }

  private async ensureNow(volume: VolumeToEnsure): Promise<string> {
    const what = `volume "${volume.name}" of tenant "${volume.tenant}"`;
    const mountPath = this.mountPathOf(volume.tenant, volume.name);
    if (volume.key === undefined) {
      await this.mountFilesystem(volume, mountPath, what);
      return mountPath;
    }
    const filesystemPath = this.cipherMountPathOf(volume.tenant, volume.name);
    await this.mountFilesystem(volume, filesystemPath, what);
    // Only root reaches the ciphertext; workloads see the plain view.
    await chmod(filesystemPath, 0o700);
    const cipherPath = join(filesystemPath, CIPHER_FOLDER);
    if (await plainViewMounted(cipherPath, mountPath)) return mountPath;
    const other = await mountAt(mountPath);
    if (other !== undefined) throw new VolumeError(`${what}: ${mountPath} still holds another mount (${other.source}); it is removed once nothing uses it, try again then`, true);
    await initCipherFolder(cipherPath, volume.key, what);
    await mkdir(mountPath, { recursive: true });
    await mountPlainView({ cipherPath, plainPath: mountPath, key: volume.key, what });
    this.log(`mounted the decrypted view of ${what} on ${mountPath}`);
    return mountPath;
  }

  /** Creates the volume's filesystem on first use and mounts it on `path`, unless it is mounted there. */
  private async mountFilesystem(volume: VolumeToEnsure, path: string, what: string): Promise<void> {
    const imagePath = this.imagePathOf(volume);
    const devices = await attachedDevices(imagePath);
    const mountedFrom = await mountSourceOf(path);
    if (mountedFrom !== undefined) {
      if (devices.includes(mountedFrom)) return;
      throw new VolumeError(`${what}: ${path} still holds an older volume of that name (${mountedFrom}); it is removed once nothing uses it, try again then`, true);
    }
    if (!existsSync(imagePath)) await this.createImage(imagePath, volume.sizeBytes, what);
    await mkdir(path, { recursive: true });
    const device = devices[0] ?? (await this.attach(imagePath, what));
    try {
      await tool(['mount', '-t', 'ext4', '-o', 'nodev,nosuid', device, path], `${what}: mounting ${device} on ${path}`);
    } catch (error) {
      await tool(['losetup', '-d', device], `${what}: detaching ${device}`).catch(() => undefined);
      throw error;
    }
    this.log(`mounted ${what} (${device}, ${imagePath}) on ${path}`);
  }

  private async copyFrozenNow(volume: VolumeIdentity, destinationPath: string): Promise<void> {
    const what = `volume "${volume.name}" of tenant "${volume.tenant}"`;
    const imagePath = this.imagePathOf(volume);
    if (!existsSync(imagePath)) throw new VolumeError(`${what}: it has no data on this node (${imagePath} is absent)`, false);
    // Its filesystem: at the mount path, or (encrypted) under the plain view.
    const devices = await attachedDevices(imagePath);
    let mountPath = this.mountPathOf(volume.tenant, volume.name);
    let mountedFrom = await mountSourceOf(mountPath);
    if (mountedFrom === undefined || !devices.includes(mountedFrom)) {
      mountPath = this.cipherMountPathOf(volume.tenant, volume.name);
      mountedFrom = await mountSourceOf(mountPath);
    }
    const frozen = mountedFrom !== undefined && devices.includes(mountedFrom);
    const partPath = `${destinationPath}.part`;
    if (frozen) await tool(['fsfreeze', '--freeze', mountPath], `${what}: freezing its filesystem`);
    try {
      await tool(['cp', '--sparse=always', imagePath, partPath], `${what}: copying ${imagePath}`);
    } catch (error) {
      await rm(partPath, { force: true });
      throw error;
    } finally {
      // Thawing must not be skipped: a frozen filesystem blocks every writer until it is.
      if (frozen) await tool(['fsfreeze', '--unfreeze', mountPath], `${what}: thawing its filesystem`).catch((error: Error) => this.log(`${error.message} (run \`fsfreeze --unfreeze ${mountPath}\`)`));
    }
    await rename(partPath, destinationPath);
    this.log(`copied ${what} to ${destinationPath}${frozen ? ' (frozen meanwhile)' : ''}`);
  }

  /**
   * Attaches the file to a free loop device, with direct I/O on its file
   * where the file's filesystem allows it (`losetup --direct-io=on`): the
   * volume's pages are then cached once, by its own ext4, not a second time
   * as pages of the backing file, which halved sequential writes. Where it is
   * refused (tmpfs, a sector size that does not match), the device stays
   * buffered.
   */
  private async attach(imagePath: string, what: string): Promise<string> {
    const device = (await tool(['losetup', '-f', '--show', imagePath], `${what}: attaching ${imagePath} to a loop device`)).trim();
    await tool(['losetup', '--direct-io=on', device], `${what}: direct I/O on ${device}`).catch((error: Error) => this.log(`${error.message}; it stays buffered`));
    return device;
  }

  /** Writes the sparse file and its filesystem under a temporary name, then renames it into place, so a crash leaves no half-made image. */
  private async createImage(imagePath: string, sizeBytes: number, what: string): Promise<void> {
    const partPath = `${imagePath}.part`;
    await mkdir(join(imagePath, '..'), { recursive: true });
    try {
      const handle = await open(partPath, 'w', 0o600);
      try {
        await handle.truncate(sizeBytes);
      } finally {
        await handle.close();
      }
      // -m 0: no blocks reserved for root, the whole size is the tenant's.
      await tool(['mkfs.ext4', '-q', '-F', '-m', '0', '-L', 'hivemind', partPath], `${what}: making its filesystem`);
      await rename(partPath, imagePath);
    } catch (error) {
      await rm(partPath, { force: true });
      throw error;
    }
    this.log(`created ${what}: ${imagePath}`);
  }

  private async removeNow(volume: VolumeIdentity): Promise<void> {
    const what = `volume "${volume.name}" of tenant "${volume.tenant}"`;
    const plainPath = this.mountPathOf(volume.tenant, volume.name);
    const imagePath = this.imagePathOf(volume);
    const devices = await attachedDevices(imagePath);
    const cipherMountPath = this.cipherMountPathOf(volume.tenant, volume.name);
    const cipherMountedFrom = await mountSourceOf(cipherMountPath);
    const encrypted = cipherMountedFrom !== undefined && devices.includes(cipherMountedFrom);
    if (encrypted && (await plainViewMounted(join(cipherMountPath, CIPHER_FOLDER), plainPath))) await unmountPlainView(plainPath, what);
    // The filesystem: where it is mounted (under the plain view when encrypted).
    const mountPath = encrypted ? cipherMountPath : plainPath;
    const mountedFrom = encrypted ? cipherMountedFrom : await mountSourceOf(plainPath);
    if (mountedFrom !== undefined && devices.includes(mountedFrom)) {
      await tool(['umount', mountPath], `${what}: unmounting ${mountPath}`, { busyRetryable: true });
      // A container's bind of the volume outlives the host's mount: the filesystem stays in use, and
      // detaching and deleting now would lose what it writes. Mount it back and let the caller retry.
      if (await deviceInUse(mountedFrom)) {
        await tool(['mount', '-t', 'ext4', '-o', 'nodev,nosuid', mountedFrom, mountPath], `${what}: mounting ${mountedFrom} on ${mountPath} again`);
        throw new VolumeError(`${what}: a workload still mounts it; it is removed once that workload is gone`, true);
      }
    }
    // A device may be gone already: detached with autoclear when its last mount went.
    for (const device of await attachedDevices(imagePath)) {
      await tool(['losetup', '-d', device], `${what}: detaching ${device}`).catch((error: VolumeError) => {
        if (!/No such device/i.test(error.message)) throw error;
      });
    }
    await rm(imagePath, { force: true });
    await rm(`${imagePath}.part`, { force: true });
    await rm(this.snapshotsDirOf(volume), { recursive: true, force: true });
    // Only an empty mount point goes: a directory still holding another mount or files is left for the next try.
    if (mountedFrom === undefined || devices.includes(mountedFrom)) {
      for (const path of encrypted || cipherMountedFrom === undefined ? [plainPath, cipherMountPath] : [plainPath]) {
        await rmdir(path).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') this.log(`${what}: its mount point ${path} stays: ${error.message}`);
        });
      }
    }
    this.log(`removed ${what}`);
  }
}

/** Linux's `dev_t` split into major and minor (new_encode_dev: minor's low 8 bits, major, then minor's high bits). */
export function deviceNumbers(rdev: number): { major: number; minor: number } {
  return { major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00) };
}

/** The loop devices attached to `imagePath` (`losetup -j`), none when the file is absent. */
async function attachedDevices(imagePath: string): Promise<string[]> {
  if (!existsSync(imagePath)) return [];
  const listed = await tool(['losetup', '-j', imagePath], `listing the loop devices of ${imagePath}`);
  // "/dev/loop3: [2049]:1234 (/path/to/file)"
  return listed
    .split('\n')
    .map((line) => line.slice(0, line.indexOf(':')))
    .filter((device) => device.startsWith('/dev/'));
}

/** Whether a filesystem on `device` is still mounted anywhere (any mount namespace): an exclusive open fails with EBUSY then. */
async function deviceInUse(device: string): Promise<boolean> {
  try {
    const handle = await open(device, constants.O_RDONLY | constants.O_EXCL);
    await handle.close();
    return false;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') return true;
    // The device went with its last mount (autoclear): nothing uses it.
    if (code === 'ENXIO' || code === 'ENOENT') return false;
    throw error;
  }
}
