/**
 * `npm run bench:volumes`: write throughput through a node-local volume (a
 * sparse file holding ext4, on a loop device: src/executor/local-volumes.ts)
 * beside the same writes to the bare data directory it lives in, and through
 * an encrypted volume (gocryptfs over the same kind of volume), with `fio`
 * (Debian's `fio`).
 *
 * Two jobs, each run on every side in every round, the order of the sides
 * rotating from one round to the next; one job's rounds run back to back,
 * then the other's:
 *   seq   sequential writes of 1 MiB blocks, `--size` (default 512 MiB), fsync at the end
 *   rand  random writes of 4 KiB blocks over `--rand-size` (default 128 MiB), fsync at the end
 * Both use `psync` (one write at a time, buffered, as a database's writer
 * does) and `end_fsync=1`, so what is measured includes getting the data to
 * the disk: through the volume, that is ext4, the loop device and the
 * backing file's filesystem. The page cache is `sync`ed and dropped before
 * each run. Each round gives a ratio volume / bare; the figure is their
 * geometric mean over `--rounds` (default 6: with three sides, each takes
 * every place in the order equally often, which cancels an order effect),
 * beside each side's median; a warm-up round of each job comes first and is
 * not counted. Target for plain volumes: >= 0.9; encrypted: reported.
 *
 * Needs root, fio, mkfs.ext4 and losetup. The work folder is on the real
 * disk (`--dir`, default /var/tmp), printed with its filesystem; everything
 * is removed at the end. Flags: --rounds N (default 6) --size BYTES --rand-size BYTES
 * --dir PATH --no-encrypted (plain volume and bare only) --json (last line:
 * one JSON object; `summary[].encrypted*` fields with the encrypted side). Run it under
 * `flock /tmp/hivemind-bench.lock` (the npm script does).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { LocalVolumes } from '../src/executor/local-volumes.js';

const MiB = 1024 ** 2;

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index !== -1 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

interface Job {
  name: 'seq' | 'rand';
  fioArgs: string[];
}

interface Run {
  job: Job['name'];
  side: 'bare' | 'volume' | 'encrypted';
  round: number;
  bytesPerSecond: number;
  iops: number;
}

function sh(argv: string[]): string {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${argv.join(' ')}: ${(result.stderr || result.error?.message || '').trim()}`);
  return result.stdout;
}

function dropCaches(): void {
  sh(['sync']);
  spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

function fio(job: Job, directory: string): { bytesPerSecond: number; iops: number } {
  const output = sh(['fio', '--name', job.name, `--directory=${directory}`, '--ioengine=psync', '--end_fsync=1', '--output-format=json', ...job.fioArgs]);
  const parsed = JSON.parse(output) as { jobs: { write: { bw_bytes: number; iops: number } }[] };
  const write = parsed.jobs[0]!.write;
  sh(['sh', '-c', `rm -f ${directory}/${job.name}.*`]);
  return { bytesPerSecond: write.bw_bytes, iops: write.iops };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const rounds = Number(flag('rounds', '6'));
  const sizeBytes = Number(flag('size', String(512 * MiB)));
  const randSizeBytes = Number(flag('rand-size', String(128 * MiB)));
  const json = process.argv.includes('--json');
  const missing = ['fio', 'mkfs.ext4', 'losetup'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  if (process.getuid?.() !== 0 || missing !== undefined) {
    console.error(missing !== undefined ? `${missing} is not installed (apt-get install fio e2fsprogs util-linux)` : 'the volume benchmark needs root (loop devices, mount)');
    process.exit(2);
  }
  // Checked before the work folder is made: a refused run leaves nothing behind.
  const encryptionMissing = ['gocryptfs', 'fusermount'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  const withEncrypted = !process.argv.includes('--no-encrypted') && encryptionMissing === undefined;
  const sideOrder: Run['side'][] = withEncrypted ? ['bare', 'volume', 'encrypted'] : ['bare', 'volume'];
  if (!Number.isInteger(rounds) || rounds < sideOrder.length || rounds % sideOrder.length !== 0) {
    console.error(`--rounds must be a multiple of ${sideOrder.length} (each of the ${sideOrder.length} sides takes every place in the order equally often)`);
    process.exit(2);
  }
  const root = mkdtempSync(join(flag('dir', '/var/tmp'), 'hivemind-bench-volumes-'));
  const bare = join(root, 'bare');
  sh(['mkdir', '-p', bare]);
  const volumes = new LocalVolumes({ volumesDir: join(root, 'volumes'), log: () => undefined });
  const volume = { tenant: 'bench', name: 'data', createdIndex: 1, sizeBytes: 2 * sizeBytes + 256 * MiB };
  const encrypted = { tenant: 'bench', name: 'vault', createdIndex: 2, sizeBytes: volume.sizeBytes, key: new Uint8Array(randomBytes(32)) };
  const jobs: Job[] = [
    { name: 'seq', fioArgs: ['--rw=write', '--bs=1M', `--size=${sizeBytes}`] },
    { name: 'rand', fioArgs: ['--rw=randwrite', '--bs=4k', `--size=${randSizeBytes}`] },
  ];
  const runs: Run[] = [];
  try {
    const mountPath = await volumes.ensure(volume);
    const encryptedPath = withEncrypted ? await volumes.ensure(encrypted) : undefined;
    const pathOf = (side: Run['side']): string => (side === 'bare' ? bare : side === 'volume' ? mountPath : encryptedPath!);
    const filesystem = sh(['df', '--output=fstype,source', root]).trim().split('\n')[1]?.trim() ?? 'unknown';
    console.log(`settings: rounds ${rounds}, seq ${sizeBytes / MiB} MiB in 1 MiB writes, rand ${randSizeBytes / MiB} MiB in 4 KiB writes, psync, end_fsync=1, caches dropped before each run`);
    console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${sh(['uname', '-r']).trim()}; work folder ${root} on ${filesystem}; fio ${sh(['fio', '--version']).trim()}`);
    console.log(`volume: ${volume.sizeBytes / MiB} MiB ext4 on a loop device (${sh(['findmnt', '-n', '-o', 'SOURCE', mountPath]).trim()})`);
    console.log(withEncrypted ? `encrypted: the same, under ${sh(['gocryptfs', '-version']).trim().split(';')[0]}` : `encrypted: not measured (${encryptionMissing !== undefined ? `${encryptionMissing} is not installed: apt-get install gocryptfs fuse3` : '--no-encrypted'})`);
    // One job's rounds back to back: a run right after the other job's was slowed by what that one left the disk to do.
    for (const job of jobs) {
      // Round 0 warms both sides up (the disk's first writes of a run were far slower) and is not counted.
      for (let round = 0; round <= rounds; round++) {
        const sides = sideOrder.map((_, place) => sideOrder[(place + round) % sideOrder.length]!);
        for (const side of sides) {
          dropCaches();
          const measured = fio(job, pathOf(side));
          if (round > 0) runs.push({ job: job.name, side, round, ...measured });
          if (!json) console.log(`${round === 0 ? 'warm-up' : `round ${round}`} ${job.name.padEnd(4)} ${side.padEnd(9)} ${(measured.bytesPerSecond / MiB).toFixed(1).padStart(8)} MiB/s ${measured.iops.toFixed(0).padStart(8)} IOPS`);
        }
      }
    }
  } finally {
    if (withEncrypted) await volumes.remove(encrypted).catch((error: Error) => console.error(`cleanup of the encrypted volume: ${error.message}`));
    // A program that made a mount namespace meanwhile (`ip netns exec`) holds a copy of the mount, and the
    // removal is refused: then the mount goes lazily and the loop device when that copy goes (autoclear).
    await volumes.remove(volume).catch((error: Error) => {
      console.error(`cleanup: ${error.message}; unmounting lazily`);
      spawnSync('umount', ['-l', volumes.mountPathOf(volume.tenant, volume.name)]);
      for (const line of spawnSync('losetup', ['-j', volumes.imagePathOf(volume)], { encoding: 'utf8' }).stdout.split('\n')) {
        if (line.startsWith('/dev/')) spawnSync('losetup', ['-d', line.slice(0, line.indexOf(':'))]);
      }
    });
    rmSync(root, { recursive: true, force: true });
  }
  // On this kind of machine the second run of a pair is often much faster than the first, whichever side it is
  // (the virtual disk's own cache): each round's ratio carries that bias one way or the other, and the geometric
  // mean over rounds in which each side took every place equally often cancels it.
  const summary = jobs.map((job) => {
    const of = (side: Run['side']): number[] => runs.filter((run) => run.job === job.name && run.side === side).sort((left, right) => left.round - right.round).map((run) => run.bytesPerSecond);
    const bareRuns = of('bare');
    const volumeRuns = of('volume');
    const ratios = volumeRuns.map((volumeRate, index) => volumeRate / bareRuns[index]!);
    const ratio = geometricMean(ratios);
    const plain = { job: job.name, bareMiBPerSecond: median(bareRuns) / MiB, volumeMiBPerSecond: median(volumeRuns) / MiB, ratio, ratios };
    if (!withEncrypted) return plain;
    const encryptedRuns = of('encrypted');
    const encryptedRatios = encryptedRuns.map((rate, index) => rate / bareRuns[index]!);
    return { ...plain, encryptedMiBPerSecond: median(encryptedRuns) / MiB, encryptedRatio: geometricMean(encryptedRatios), encryptedRatios };
  });
  console.log('\njob   bare MiB/s (median)   volume MiB/s (median)   volume/bare (geometric mean of the rounds; target >= 0.9)');
  for (const row of summary) console.log(`${row.job.padEnd(5)} ${row.bareMiBPerSecond.toFixed(1).padStart(19)} ${row.volumeMiBPerSecond.toFixed(1).padStart(23)} ${row.ratio.toFixed(2).padStart(10)}   rounds: ${row.ratios.map((value) => value.toFixed(2)).join(' ')}`);
  if (withEncrypted) {
    console.log('\njob   encrypted MiB/s (median)   encrypted/bare (geometric mean of the rounds; reported)');
    for (const row of summary) {
      if (!('encryptedRatio' in row)) continue;
      console.log(`${row.job.padEnd(5)} ${row.encryptedMiBPerSecond.toFixed(1).padStart(26)} ${row.encryptedRatio.toFixed(2).padStart(10)}   rounds: ${row.encryptedRatios.map((value) => value.toFixed(2)).join(' ')}`);
    }
  }
  if (json) console.log(JSON.stringify({ runs, summary }));
}

function geometricMean(values: readonly number[]): number {
  return Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length);
}

main().catch((error: unknown) => {
  console.error((error as Error).message);
  process.exit(1);
});
