/**
 * Reading the local files and folders an app file mounts as configs
 * (`configs.x.file`, relative bind mounts such as `./certs:/etc/nginx/certs`)
 * into `LocalSource`s for the parse: a file's bytes, or a folder's files by
 * relative path. A folder is read only up to the limits of one app's configs
 * (`configLimits`); past them it is `too-large`, and the parse refuses the
 * mount saying to use a named volume.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalSource } from '../appfile/index.js';
import { UsageError } from './errors.js';

/** How deep a folder mounted as a config is read (`certs/live/site/fullchain.pem` is three below). */
const FOLDER_DEPTH_MAX = 4;

/** `path` as a LocalSource; undefined when it does not exist (the parse names the mount that misses it). */
export async function readLocalSource(path: string): Promise<LocalSource | undefined> {
  // Loaded here, not at start: the limits come from the state's validation, which only the app-file commands need.
  const { configLimits } = await import('../appfile/configs.js');
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return undefined;
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (info.isFile()) {
    if (info.size > configLimits.bytesMax) return { kind: 'too-large', files: 1, bytes: info.size };
    return { kind: 'file', data: (await readFile(path)).toString('base64') };
  }
  if (!info.isDirectory()) throw new UsageError(`cannot mount ${path}: it is neither a file nor a folder`);
  const tally = { files: 0, bytes: 0 };
  const files: { path: string; data: string }[] = [];
  const complete = await readFolder(path, '', { tally, files, depth: 0, limits: configLimits });
  return complete ? { kind: 'folder', files } : { kind: 'too-large', files: tally.files, bytes: tally.bytes };
}

/** Adds the files under `folder` to `files`; false once the limits are passed (then it stops reading). */
async function readFolder(folder: string, prefix: string, walk: { tally: { files: number; bytes: number }; files: { path: string; data: string }[]; depth: number; limits: { filesMax: number; bytesMax: number } }): Promise<boolean> {
  const entries = (await readdir(folder, { withFileTypes: true })).sort((left, right) => (left.name < right.name ? -1 : 1));
  for (const entry of entries) {
    const full = join(folder, entry.name);
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    const info = await stat(full).catch(() => undefined);
    if (info === undefined) continue;
    if (info.isDirectory()) {
      // A deep tree is data, not configuration.
      if (walk.depth + 1 > FOLDER_DEPTH_MAX) return false;
      if (!(await readFolder(full, relative, { ...walk, depth: walk.depth + 1 }))) return false;
      continue;
    }
    if (!info.isFile()) continue;
    walk.tally.files += 1;
    walk.tally.bytes += info.size;
    if (walk.tally.files > walk.limits.filesMax || walk.tally.bytes > walk.limits.bytesMax) return false;
    walk.files.push({ path: relative, data: (await readFile(full)).toString('base64') });
  }
  return true;
}
