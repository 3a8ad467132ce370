/**
 * A check of LevelDB's write-ahead log files (`<number>.log`) before LevelDB
 * opens them: the part of LevelDB's `paranoid_checks` that `classic-level`
 * cannot switch on.
 *
 * Why: `classic-level` 3.0 passes no `paranoid_checks` (nor `verify_checksums`)
 * to LevelDB 1.20, so LevelDB's recovery skips a log record whose CRC does not
 * match, and with it the rest of its 32 KiB block, writes only a line in its
 * own `LOG` file, and then deletes the log. A flipped byte in the last synced
 * batch would silently drop an entry this node had acknowledged; one in the
 * middle would drop whole batches. So the storage reads the log itself first
 * and tells the two cases LevelDB cannot:
 *
 * - a torn tail: the log ends inside its last write, which therefore never
 *   finished its fsync and was acknowledged to no one (etcd repairs its last
 *   WAL segment for the same reason). LevelDB drops it; the storage logs it.
 * - anything else that is not a well-formed record: the storage refuses to
 *   open with `StorageCorruptError`, as LevelDB with paranoid checks would.
 *
 * The log format (LevelDB's `doc/log_format.md`): 32 KiB blocks of physical
 * records, each a 7-byte header (masked CRC32C of type and payload, 4 bytes
 * little-endian; payload length, 2 bytes little-endian; type: 1 full, 2 first,
 * 3 middle, 4 last fragment) and its payload; fewer than 7 bytes left in a
 * block are zero padding. One logical record is one write batch.
 *
 * The decision is a pure function of the file's bytes (`checkLogBytes`); only
 * `checkLevelDbLogs` reads files.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c, maskLevelDbCrc } from './crc32c.js';

const BLOCK_BYTES = 32768;
const HEADER_BYTES = 7;
/** A write batch's own header: 8-byte sequence number and 4-byte count (LevelDB's `kHeader`). */
const BATCH_HEADER_BYTES = 12;
/** etcd's torn-write test looks for a whole disk sector of zeros inside the bad record. */
const SECTOR_BYTES = 512;

const enum RecordType {
  Zero = 0,
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4,
}

/** What the check found in one log file. Offsets are bytes from the file's start. */
export type LogVerdict =
  | { kind: 'intact' }
  /** The last write is incomplete from `offset` on (`droppedBytes` to the end); LevelDB drops it. */
  | { kind: 'torn'; offset: number; droppedBytes: number; reason: string }
  /** A record that LevelDB would skip, followed by data it would keep: not a crash's doing. */
  | { kind: 'corrupt'; offset: number; problem: string };

/**
 * Classifies one log file's bytes. A write cut by a crash leaves either a
 * file that ends inside its last record (a header, payload or fragment chain
 * cut short) or, on file systems that extend a file before its data lands,
 * zeros where the data should be: zero headers, or a record failing its CRC
 * with a sector's worth of zeros in it (etcd's `isTornEntry`). Such damage is
 * a torn tail only if no complete record follows it: a complete write after
 * it means the damage is older than the crash, so it may have hit a write
 * that was synced and acknowledged.
 */
export function checkLogBytes(bytes: Uint8Array): LogVerdict {
  const length = bytes.length;
  /** The first offset of the logical record in progress, or -1. */
  let fragmentStart = -1;
  let fragmentBytes = 0;
  /** Where damage that may be a torn write began, and what it was; -1 while there is none. */
  let damageOffset = -1;
  let damageReason = '';
  let offset = 0;
  const torn = (at: number, reason: string): LogVerdict => ({ kind: 'torn', offset: at, droppedBytes: length - at, reason });
  const damaged = (at: number, reason: string): void => {
    if (damageOffset < 0) {
      damageOffset = fragmentStart >= 0 ? fragmentStart : at;
      damageReason = reason;
    }
    fragmentStart = -1;
    offset = resyncOffset(bytes, at);
  };
  while (offset < length) {
    const blockLeft = BLOCK_BYTES - (offset % BLOCK_BYTES);
    if (blockLeft < HEADER_BYTES) {
      offset += blockLeft;
      continue;
    }
    if (length - offset < HEADER_BYTES) return torn(tornStart(), 'the file ends inside a record header');
    const storedCrc = readUint32(bytes, offset);
    const payloadBytes = bytes[offset + 4]! | (bytes[offset + 5]! << 8);
    const type = bytes[offset + 6]!;
    const end = offset + HEADER_BYTES + payloadBytes;
    if (type === RecordType.Zero && payloadBytes === 0 && storedCrc === 0) {
      damaged(offset, 'zeros where a record should be');
      continue;
    }
    // The writer never lets a record cross its block's end; a length that does is damage, unless the file ends first.
    if (HEADER_BYTES + payloadBytes > blockLeft && length >= offset + blockLeft) {
      return corrupt(offset, `a record's length (${payloadBytes} bytes) runs past the end of its 32 KiB block`);
    }
    if (end > length) return torn(tornStart(), 'the file ends inside a record');
    if (maskLevelDbCrc(crc32c(bytes.subarray(offset + 6, end))) !== storedCrc) {
      if (!hasZeroChunk(bytes, offset, end)) return corrupt(offset, 'a record fails its CRC32C');
      damaged(offset, 'a record fails its CRC32C and holds a sector of zeros');
      continue;
    }
    offset = end;
    const problem = stepFragment(type, payloadBytes, end - HEADER_BYTES - payloadBytes);
    if (problem !== undefined) return corrupt(end - HEADER_BYTES - payloadBytes, problem);
  }
  if (fragmentStart >= 0 || damageOffset >= 0) return torn(tornStart(), damageOffset >= 0 ? damageReason : 'the last write has no last fragment');
  return { kind: 'intact' };

  function tornStart(): number {
    if (damageOffset >= 0) return damageOffset;
    return fragmentStart >= 0 ? fragmentStart : offset;
  }

  /** Follows the fragment chain; after damage, a completed write is corruption, orphan fragments are not. */
  function stepFragment(type: number, payloadBytes: number, recordOffset: number): string | undefined {
    const afterDamage = damageOffset >= 0;
    switch (type) {
      case RecordType.Full:
        if (afterDamage) return `a complete write follows damage at offset ${damageOffset} (${damageReason})`;
        if (fragmentStart >= 0) return 'a write starts before the previous one ended';
        return payloadBytes < BATCH_HEADER_BYTES ? 'a write batch is shorter than its header' : undefined;
      case RecordType.First:
        if (fragmentStart >= 0 && !afterDamage) return 'a write starts before the previous one ended';
        fragmentStart = recordOffset;
        fragmentBytes = payloadBytes;
        return undefined;
      case RecordType.Middle:
      case RecordType.Last:
        if (fragmentStart < 0) return afterDamage ? undefined : 'a fragment without the start of its write';
        fragmentBytes += payloadBytes;
        if (type === RecordType.Middle) return undefined;
        if (afterDamage) return `a complete write follows damage at offset ${damageOffset} (${damageReason})`;
        fragmentStart = -1;
        return fragmentBytes < BATCH_HEADER_BYTES ? 'a write batch is shorter than its header' : undefined;
      default:
        return `a record of unknown type ${type}`;
    }
  }
}

/**
 * Where to read on after damage at `at`. LevelDB drops the rest of the block
 * and goes on at the next one, so a write that completed after the damage in
 * the same block would vanish unseen: look for a record that starts a write
 * (full or first fragment, its CRC matching) in the rest of the block, at any
 * offset, since the damage may have hidden where records begin. A match by
 * chance needs 32 bits of CRC to agree.
 */
function resyncOffset(bytes: Uint8Array, at: number): number {
  const blockEnd = (Math.floor(at / BLOCK_BYTES) + 1) * BLOCK_BYTES;
  const searchEnd = Math.min(blockEnd, bytes.length) - HEADER_BYTES;
  for (let offset = at + 1; offset <= searchEnd; offset++) {
    const type = bytes[offset + 6]!;
    if (type !== RecordType.Full && type !== RecordType.First) continue;
    const end = offset + HEADER_BYTES + (bytes[offset + 4]! | (bytes[offset + 5]! << 8));
    if (end > Math.min(blockEnd, bytes.length)) continue;
    if (maskLevelDbCrc(crc32c(bytes.subarray(offset + 6, end))) === readUint32(bytes, offset)) return offset;
  }
  return blockEnd;
}

function corrupt(offset: number, problem: string): LogVerdict {
  return { kind: 'corrupt', offset, problem };
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

/** Whether [start, end), cut at sector boundaries of the file, has a piece that is all zeros. */
function hasZeroChunk(bytes: Uint8Array, start: number, end: number): boolean {
  let chunkStart = start;
  while (chunkStart < end) {
    const chunkEnd = Math.min(end, (Math.floor(chunkStart / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    let zero = true;
    for (let offset = chunkStart; offset < chunkEnd && zero; offset++) zero = bytes[offset] === 0;
    if (zero) return true;
    chunkStart = chunkEnd;
  }
  return false;
}

/** One log file's verdict, with the file's name. */
export interface LogFileVerdict {
  file: string;
  verdict: LogVerdict;
}

/**
 * Checks every `<number>.log` file in `directory`, oldest first. A missing
 * directory has none. File system errors reject unchanged.
 *
 * Run it before LevelDB opens the directory: opening replays the logs into a
 * table and deletes them. It reads without LevelDB's lock (Node cannot take
 * an fcntl lock), so while another process has the directory open it may see
 * that process's write in flight: usually as a torn tail, which the caller
 * reports only after its own open, and so its lock, succeeded; in the worst
 * case, a page read half-copied, as corruption. Two processes on one
 * directory is an operator's mistake either way.
 */
export async function checkLevelDbLogs(directory: string): Promise<LogFileVerdict[]> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return [];
    throw error;
  }
  const logs = names.filter((name) => /^\d+\.log$/.test(name)).sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
  const verdicts: LogFileVerdict[] = [];
  for (const file of logs) verdicts.push({ file, verdict: checkLogBytes(await readFile(join(directory, file))) });
  return verdicts;
}
