/**
 * Volume backups as archives of files: a `tar` of the volume's filesystem,
 * compressed with zstd (`file.tar.zst`, readable with `tar --zstd -xf`).
 *
 * Reading: the volume is copied frozen (LocalVolumes.copyFrozen, or a kept
 * snapshot is used), the copy is attached read-only and mounted (`ro,noload`:
 * nothing is replayed or written) in a work folder under
 * `<volumesDir>/.work/`, and `tar` streams its files; the copy, its mount
 * and loop device go when the stream ends, fails or is abandoned.
 *
 * Writing: `tar` extracts a stream into a mounted volume as root, keeping
 * owners (numeric), modes, times and extended attributes. GNU tar strips
 * leading `/`, skips members with `..`, and makes links that could lead out
 * of the folder last, so an archive cannot write outside the volume; the
 * volume's size bounds what it can fill (ENOSPC), and its mount has
 * `nodev,nosuid`, so device files and set-uid bits in an archive give no power.
 * Files are restored, never a filesystem image: a node never mounts an
 * image a user sent.
 *
 * Needs `tar` and `zstd` (Debian's `tar`, `zstd`), `losetup` and `mount`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CIPHER_FOLDER, mountPlainView, unmountPlainView } from './gocryptfs.js';
import { mountAt, mountSourceOf, tool, VolumeError } from './volume-tool.js';

/** Media type of a volume archive (a tar compressed with zstd). */
export const VOLUME_ARCHIVE_CONTENT_TYPE = 'application/zstd';
/** Bytes of a tool's error output kept for its message. */
const STDERR_BYTES_MAX = 4096;

const CREATE_FLAGS = ['--create', '--zstd', '--file=-', '--numeric-owner', '--xattrs', '--sparse', '--one-file-system'];
const EXTRACT_FLAGS = ['--extract', '--zstd', '--file=-', '--numeric-owner', '--same-owner', '--same-permissions', '--xattrs'];

/** Where archives are read from copies: `<volumesDir>/.work/`. */
export function workDirOf(volumesDir: string): string {
  return join(volumesDir, '.work');
}

/** Work folders in use by this process, which `cleanWork` leaves alone. */
const activeWork = new Set<string>();

/** A fresh work folder under `<volumesDir>/.work/`, in use until `endWork`. */
export async function beginWork(volumesDir: string): Promise<string> {
  const work = join(workDirOf(volumesDir), randomBytes(8).toString('hex'));
  activeWork.add(work);
  await mkdir(work, { recursive: true, mode: 0o700 });
  return work;
}

/** Deletes a work folder (unless something is still mounted in it) and forgets it. */
export async function endWork(work: string): Promise<void> {
  if ((await mountSourceOf(join(work, 'files'))) === undefined) await rm(work, { recursive: true, force: true });
  activeWork.delete(work);
}

/**
 * Streams the files of the ext4 image at `imagePath` as a tar.zst, then ends
 * `work` (a folder from beginWork, where the image is mounted meanwhile, and
 * which may hold the image itself: a copy made for this archive). The image
 * must not change meanwhile (a frozen copy or a snapshot). The mount and loop
 * device are released and `work` ended when the stream ends, fails or is
 * returned early; a failure of tar throws from the iterator after its last
 * bytes (the caller's response is then cut short, and the archive is
 * incomplete: zstd and tar both notice on restore).
 */
export async function* archiveImage(options: { work: string; imagePath: string; what: string; log: (line: string) => void; key?: Uint8Array }): AsyncGenerator<Uint8Array> {
  const { what, work } = options;
  const mountPath = join(work, 'files');
  const plainPath = join(work, 'plain');
  let device: string | undefined;
  let mounted = false;
  let plainMounted = false;
  try {
    await mkdir(mountPath, { recursive: true, mode: 0o700 });
    device = (await tool(['losetup', '--read-only', '-f', '--show', options.imagePath], `${what}: attaching its copy`)).trim();
    await tool(['mount', '-t', 'ext4', '-o', 'ro,noload,nodev,nosuid,noexec', device, mountPath], `${what}: mounting its copy`);
    mounted = true;
    let filesPath = mountPath;
    if (options.key !== undefined) {
      await mkdir(plainPath, { recursive: true, mode: 0o700 });
      await mountPlainView({ cipherPath: join(mountPath, CIPHER_FOLDER), plainPath, key: options.key, readOnly: true, what });
      plainMounted = true;
      filesPath = plainPath;
    }
    yield* streamOf(['tar', ...CREATE_FLAGS, '-C', filesPath, '.'], `${what}: archiving its files`);
  } finally {
    if (plainMounted) await unmountPlainView(plainPath, what).catch((error: Error) => options.log(error.message));
    if (mounted) await tool(['umount', mountPath], `${what}: unmounting its copy`).catch((error: Error) => options.log(error.message));
    if (device !== undefined) await tool(['losetup', '-d', device], `${what}: detaching its copy`).catch(() => undefined);
    await endWork(work);
  }
}

/**
 * Extracts a tar.zst stream into the mounted volume at `mountPath`. Throws
 * VolumeError with tar's message when the archive is not a tar.zst, is cut
 * short, or does not fit (ENOSPC).
 */
export async function extractArchive(options: { mountPath: string; body: AsyncIterable<Uint8Array>; what: string; signal?: AbortSignal }): Promise<void> {
  const child = spawn('tar', [...EXTRACT_FLAGS, '-C', options.mountPath], { stdio: ['pipe', 'ignore', 'pipe'] });
  const stderr = collect(child.stderr);
  const exited = exitOf(child, ['tar'], `${options.what}: extracting the archive`, stderr);
  // Writing stops with EPIPE when tar gives up early: its exit says why.
  const fed = pipeline(Readable.from(options.body), child.stdin, ...(options.signal ? [{ signal: options.signal }] : [])).catch((error: Error) => error);
  const [feedError] = await Promise.all([fed, exited.catch((error: Error) => {
    child.stdin.destroy();
    throw error;
  })]);
  if (feedError instanceof Error && (feedError as NodeJS.ErrnoException).code !== 'EPIPE') throw new VolumeError(`${options.what}: reading the archive failed: ${feedError.message}`, false);
}

/**
 * Removes what an interrupted archive left under `<volumesDir>/.work/` (a
 * crash mid-backup): unmounts and detaches, then deletes. Folders this
 * process still uses are left alone.
 */
export async function cleanWork(volumesDir: string, log: (line: string) => void): Promise<void> {
  const root = workDirOf(volumesDir);
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    const work = join(root, entry);
    if (activeWork.has(work)) continue;
    const plainPath = join(work, 'plain');
    if ((await mountAt(plainPath))?.type === 'fuse.gocryptfs') await unmountPlainView(plainPath, `unmounting ${plainPath}`).catch((error: Error) => log(error.message));
    const mountPath = join(work, 'files');
    const device = await mountSourceOf(mountPath);
    if (device !== undefined) {
      await tool(['umount', mountPath], `unmounting ${mountPath}`).catch((error: Error) => log(error.message));
      await tool(['losetup', '-d', device], `detaching ${device}`).catch(() => undefined);
    }
    if ((await mountSourceOf(mountPath)) === undefined) await rm(work, { recursive: true, force: true });
  }
}

/** Yields the stdout of `argv`; throws VolumeError after the last chunk when it fails. Kills it when the consumer stops early. */
async function* streamOf(argv: string[], what: string): AsyncGenerator<Uint8Array> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = collect(child.stderr);
  const exited = exitOf(child, argv, what, stderr);
  exited.catch(() => undefined);
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    await exited;
    finished = true;
  } finally {
    if (!finished && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited.catch(() => undefined);
    }
  }
}

function collect(stream: NodeJS.ReadableStream): { text: string } {
  const kept = { text: '' };
  stream.on('data', (chunk: Buffer) => {
    if (kept.text.length < STDERR_BYTES_MAX) kept.text += chunk.toString().slice(0, STDERR_BYTES_MAX - kept.text.length);
  });
  return kept;
}

function exitOf(child: ReturnType<typeof spawn>, argv: string[], what: string, stderr: { text: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT' ? ` (${argv[0]} is not installed: apt-get install ${argv[0] === 'tar' ? 'tar zstd' : 'util-linux'})` : '';
      reject(new VolumeError(`${what}: ${error.message}${missing}`, false));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const detail = stderr.text.trim() || (signal ? `killed by ${signal}` : `exit code ${code}`);
      reject(new VolumeError(`${what}: ${argv[0]} failed: ${detail}`, false));
    });
  });
}
