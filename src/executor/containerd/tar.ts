/**
 * A small tar (ustar, with PAX path records for long names) writer and
 * indexer: enough to build image layers and OCI layout archives, and to find
 * the blobs inside an uploaded archive without unpacking it.
 */
import { open, readdir, lstat, readlink, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const BLOCK_BYTES = 512;
/** Entries an archive index holds at most (an OCI layout has a few per layer). */
const INDEX_ENTRIES_MAX = 100_000;

/** One entry to write. */
export interface TarEntry {
  /** Path inside the archive, no leading slash; directories without trailing slash. */
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Bytes of content (files only). */
  size: number;
  /** Permission bits. */
  mode: number;
  linkName?: string;
  uid?: number;
  gid?: number;
  mtimeSeconds?: number;
}

function writeOctal(block: Buffer, value: number, offset: number, length: number): void {
  block.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'ascii');
}

function headerBlock(entry: TarEntry, name: string, typeFlag: string, size: number): Buffer {
  const block = Buffer.alloc(BLOCK_BYTES);
  let prefix = '';
  let shortName = name;
  if (Buffer.byteLength(name) > 100) {
    // ustar: split at a slash into prefix (155) and name (100); PAX covers the rest.
    const cut = name.lastIndexOf('/', 155);
    if (cut > 0 && Buffer.byteLength(name.slice(cut + 1)) <= 100) {
      prefix = name.slice(0, cut);
      shortName = name.slice(cut + 1);
    } else shortName = name.slice(0, 100);
  }
  block.write(shortName, 0, 100, 'utf8');
  writeOctal(block, entry.mode & 0o7777, 100, 8);
  writeOctal(block, entry.uid ?? 0, 108, 8);
  writeOctal(block, entry.gid ?? 0, 116, 8);
  writeOctal(block, size, 124, 12);
  writeOctal(block, entry.mtimeSeconds ?? 0, 136, 12);
  block.write('        ', 148, 8, 'ascii');
  block.write(typeFlag, 156, 1, 'ascii');
  if (entry.linkName !== undefined) block.write(entry.linkName, 157, 100, 'utf8');
  block.write('ustar\0', 257, 6, 'ascii');
  block.write('00', 263, 2, 'ascii');
  block.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return block;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

/** The header block(s) of `entry`: a PAX record first when the name or link does not fit ustar. */
export function tarHeader(entry: TarEntry): Buffer {
  const typeFlag = entry.type === 'file' ? '0' : entry.type === 'directory' ? '5' : '2';
  const name = entry.type === 'directory' ? `${entry.name}/` : entry.name;
  const needsPax = Buffer.byteLength(name) > 255 || (Buffer.byteLength(name) > 100 && !fitsUstar(name)) || Buffer.byteLength(entry.linkName ?? '') > 100;
  const header = headerBlock(entry, name, typeFlag, entry.type === 'file' ? entry.size : 0);
  if (!needsPax) return header;
  let records = paxRecord('path', name);
  if (entry.linkName !== undefined && Buffer.byteLength(entry.linkName) > 100) records += paxRecord('linkpath', entry.linkName);
  const body = Buffer.from(records, 'utf8');
  const pax = headerBlock({ name: 'PaxHeader', type: 'file', size: body.length, mode: 0o644 }, 'PaxHeader', 'x', body.length);
  return Buffer.concat([pax, body, tarPadding(body.length), header]);
}

function fitsUstar(name: string): boolean {
  const cut = name.lastIndexOf('/', 155);
  return cut > 0 && Buffer.byteLength(name.slice(cut + 1)) <= 100;
}

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK_BYTES;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK_BYTES - rest);
}

/** The two zero blocks that end an archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(BLOCK_BYTES * 2);
}

/** Something that takes chunks in order (a hash and a file, say). */
export type ChunkSink = (chunk: Buffer) => Promise<void>;

/**
 * Writes the tree under `root` as tar entries into `sink`, in sorted order,
 * owned by root, with zero mtimes: the same tree gives the same bytes.
 * Regular files, directories and symlinks; other kinds are refused.
 */
export async function writeDirectoryEntries(root: string, sink: ChunkSink, prefix = ''): Promise<void> {
  const names = (await readdir(join(root, prefix))).sort();
  for (const base of names) {
    const name = prefix === '' ? base : `${prefix}/${base}`;
    const path = join(root, name);
    const stats = await lstat(path);
    const mode = stats.mode & 0o7777;
    if (stats.isDirectory()) {
      await sink(tarHeader({ name, type: 'directory', size: 0, mode }));
      await writeDirectoryEntries(root, sink, name);
    } else if (stats.isSymbolicLink()) {
      await sink(tarHeader({ name, type: 'symlink', size: 0, mode: 0o777, linkName: await readlink(path) }));
    } else if (stats.isFile()) {
      const content = await readFile(path);
      await sink(tarHeader({ name, type: 'file', size: content.length, mode }));
      await sink(content);
      await sink(tarPadding(content.length));
    } else {
      throw new Error(`cannot put ${path} in an image layer: only files, folders and symlinks are supported`);
    }
  }
}

/** Where one entry's content sits inside an archive file. */
export interface TarIndexEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** Byte offset of the content in the archive. */
  offset: number;
  size: number;
}

function readString(block: Buffer, offset: number, length: number): string {
  const slice = block.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return slice.subarray(0, end === -1 ? length : end).toString('utf8');
}

function readNumber(block: Buffer, offset: number, length: number): number {
  const slice = block.subarray(offset, offset + length);
  if ((slice[0]! & 0x80) !== 0) {
    // GNU base-256 for large sizes.
    let value = 0;
    for (let index = 1; index < slice.length; index += 1) value = value * 256 + slice[index]!;
    return value;
  }
  const text = readString(block, offset, length).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/** Lists the entries of the tar archive at `path` (not compressed) with where their content is. Throws on a damaged archive. */
export async function indexTar(path: string): Promise<TarIndexEntry[]> {
  const handle = await open(path, 'r');
  try {
    const entries: TarIndexEntry[] = [];
    const { size: fileBytes } = await handle.stat();
    const block = Buffer.alloc(BLOCK_BYTES);
    let position = 0;
    let longName: string | undefined;
    while (position + BLOCK_BYTES <= fileBytes) {
      await handle.read(block, 0, BLOCK_BYTES, position);
      if (block.every((byte) => byte === 0)) break;
      const checksum = readNumber(block, 148, 8);
      let sum = 0;
      for (let index = 0; index < BLOCK_BYTES; index += 1) sum += index >= 148 && index < 156 ? 32 : block[index]!;
      if (sum !== checksum) throw new Error(`not a tar archive (bad header checksum at byte ${position})`);
      const size = readNumber(block, 124, 12);
      const typeFlag = String.fromCharCode(block[156]!);
      const prefix = block.subarray(257, 262).toString('ascii') === 'ustar' ? readString(block, 345, 155) : '';
      let name = readString(block, 0, 100);
      if (prefix !== '') name = `${prefix}/${name}`;
      const contentOffset = position + BLOCK_BYTES;
      position = contentOffset + size + tarPadding(size).length;
      if (position > fileBytes) throw new Error(`tar archive ${path} is truncated`);
      if (typeFlag === 'x' || typeFlag === 'L') {
        const body = Buffer.alloc(size);
        await handle.read(body, 0, size, contentOffset);
        longName = typeFlag === 'L' ? readString(body, 0, size) : /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1];
        continue;
      }
      if (typeFlag === 'g') continue;
      if (longName !== undefined) name = longName;
      longName = undefined;
      name = name.replace(/^\.\//, '').replace(/\/$/, '');
      const type = typeFlag === '0' || typeFlag === '\0' ? 'file' : typeFlag === '5' ? 'directory' : typeFlag === '2' ? 'symlink' : 'other';
      entries.push({ name, type, offset: contentOffset, size });
      if (entries.length > INDEX_ENTRIES_MAX) throw new Error(`tar archive ${path} has more than ${INDEX_ENTRIES_MAX} entries`);
    }
    return entries;
  } finally {
    await handle.close();
  }
}
