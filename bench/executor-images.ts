/**
 * `npm run bench:executor -- --mode images`: an image imported on one node
 * and ready (stored and unpacked) on three, beside `ctr image import` of the
 * same archive on one node, in the same run.
 *
 * Four containerds of the benchmark's own: A, B and C play three nodes, D
 * the floor. Each round builds a fresh image (busybox and `--image-mib` MiB
 * of random bytes, so no store holds any of it), then, in an order that
 * alternates between rounds:
 *   - the floor: `ctr -n bench image import` of the archive into D (which
 *     stores and unpacks it);
 *   - Hivemind: the archive imported into A (`ImageStore.importArchive`,
 *     what `hivemind image import` runs), then B and C fetch it from A at the
 *     same time through the real Images gRPC service on loopback
 *     (`imagesServiceForServer`, its Read routed past grpc-js as on the peer
 *     port, `remoteImageShare`, `fetchFromPeer`), each storing and unpacking it.
 * The service runs without TLS here (the peer port's TLS is measured by
 * bench:raft --tls); everything else is the agent's code. Target: Hivemind's
 * time to ready on three nodes at most 2x the floor's on one.
 *
 * Flags: --rounds 3  --image-mib 10  --json (last line: one JSON object).
 */
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { routeRawStreams } from '../consensus/transport-grpc.js';
import { imagesServiceForServer, remoteImageShare } from '../src/agent/image-service.js';
import { ContainerdClient } from '../src/executor/containerd/client.js';
import { ContainerdImageShare, fetchFromPeer } from '../src/executor/containerd/image-share.js';
import { ImageStore } from '../src/executor/containerd/images.js';
import { buildOciLayout } from '../src/executor/containerd/oci-layout.js';
import { OwnContainerd } from '../src/executor/containerd/own-containerd.js';
import { cpuTimeMs, endedChildrenCpuTimeMs, runCommand } from './processes.js';

interface ImagesRound {
  round: number;
  imageBytes: number;
  /** `ctr image import` on one node (stored and unpacked). */
  ctrImportMs: number;
  /** Hivemind: the import on A. */
  importMs: number;
  /** Hivemind: B and C fetching from A at once, until both hold it unpacked. */
  fetchMs: number;
  /** Hivemind: import plus fetch: ready on three nodes. */
  readyOnThreeMs: number;
  ratio: number;
  /** CPU (user + system) of `ctr` and containerd D for the floor's import. */
  ctrImportCpuMs: number;
  /** CPU of this process and containerd A for the import on A. */
  importCpuMs: number;
  /** CPU of this process and containerds A, B and C for the fetch, per fetching node (halved: the serving side is charged to the fetchers). */
  fetchCpuPerNodeMs: number;
  /** The fetch's CPU by process: this one (serving and both fetchers), containerd A (serving), B and C (storing and unpacking). */
  fetchCpuByProcessMs: { benchmark: number; containerdA: number; containerdB: number; containerdC: number };
  /** The import's CPU by process: this one and containerd A. */
  importCpuByProcessMs: { benchmark: number; containerdA: number };
  /**
   * (importCpuMs + fetchCpuPerNodeMs) / ctrImportCpuMs: the work on the path to
   * ready on three separate hosts (an import, then fetches that run on their
   * own hosts at once) against ctr's on one. Two shared cores run the three
   * "hosts" here on the same cores, so the wall-clock ratio counts the two
   * fetches one after the other; this one does not depend on the core count.
   */
  cpuRatio: number;
}

/** CPU so far, ms, of this process and each of the given processes, in that order. */
function cpuEach(pids: readonly (number | undefined)[]): number[] {
  const own = process.cpuUsage();
  return [(own.user + own.system) / 1000, ...pids.map((pid) => (pid === undefined ? 0 : cpuTimeMs(pid)))];
}

function minus(after: number[], before: number[]): number[] {
  return after.map((value, index) => Math.round(value - before[index]!));
}

const sum = (values: number[]): number => values.reduce((total, value) => total + value, 0);

/** An OCI archive of busybox plus `mib` MiB of fresh random bytes; answers its name and size. */
async function buildImage(work: string, round: number, mib: number): Promise<{ path: string; name: string; bytes: number }> {
  const rootfs = join(work, `rootfs-${round}`);
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  await symlink('busybox', join(rootfs, 'bin', 'sh'));
  await writeFile(join(rootfs, 'payload'), randomBytes(mib * 1024 * 1024));
  const path = join(work, `image-${round}.tar`);
  const name = `hivemind.local/bench-images:round-${round}`;
  const built = await buildOciLayout({ rootfsDir: rootfs, outputPath: path, name, config: { cmd: ['sh'] } });
  await rm(rootfs, { recursive: true, force: true });
  return { path, name, bytes: built.archiveBytes };
}

export async function imagesMode(options: { rounds: number; imageMib: number; json: boolean }): Promise<void> {
  const work = await mkdtemp('/tmp/hmbi-');
  const nodes = ['a', 'b', 'c', 'd'].map((name) => new OwnContainerd({ dataDir: join(work, name), log: () => undefined }));
  const clients: ContainerdClient[] = [];
  const server = new grpc.Server();
  const remotes: Array<{ close(): void }> = [];
  const rounds: ImagesRound[] = [];
  let rssBytesMax = 0;
  try {
    for (const node of nodes) await node.start();
    const stores = nodes.slice(0, 3).map((node) => {
      const client = new ContainerdClient({ socketPath: node.socketPath });
      clients.push(client);
      return new ImageStore({ client });
    });
    for (const client of clients) await client.ensureNamespace();
    const [storeA, storeB, storeC] = stores as [ImageStore, ImageStore, ImageStore];
    const service = imagesServiceForServer({ share: () => new ContainerdImageShare(() => storeA), authenticate: () => ({ ok: true, nodeId: 'b' }), onRejected: () => undefined, log: () => undefined });
    server.addService(service.definition, service.implementation);
    const routed = routeRawStreams(server, service.rawStreams);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
    if (!routed()) throw new Error('the Images service\'s Read is not routed past grpc-js (consensus/transport/raw-streams.ts)');
    const fromA = () => {
      const remote = remoteImageShare(`127.0.0.1:${port}`, 'a', { credentials: grpc.credentials.createInsecure() });
      remotes.push(remote);
      return { nodeId: 'a', images: remote.images };
    };
    const floorSocket = nodes[3]!.socketPath;
    console.log(`executor benchmark (images): ${options.rounds} rounds; each a fresh image of busybox and ${options.imageMib} MiB of random bytes; Hivemind: import on node A, then B and C fetch from A at once over the Images gRPC service on loopback (no TLS), each storing and unpacking; floor: ctr image import on node D; four containerds of the benchmark's own; order alternates`);
    console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)} at the start`);
    for (let round = 1; round <= options.rounds; round += 1) {
      const image = await buildImage(work, round, options.imageMib);
      const [pidA, pidB, pidC, pidD] = nodes.map((node) => node.pid);
      const floor = async (): Promise<{ ms: number; cpuMs: number }> => {
        const started = performance.now();
        const cpuBefore = endedChildrenCpuTimeMs() + cpuTimeMs(pidD!);
        await runCommand('ctr', ['-a', floorSocket, '-n', 'bench', 'image', 'import', image.path]);
        return { ms: performance.now() - started, cpuMs: endedChildrenCpuTimeMs() + cpuTimeMs(pidD!) - cpuBefore };
      };
      const ours = async (): Promise<{ importMs: number; fetchMs: number; importCpu: number[]; fetchCpu: number[] }> => {
        const started = performance.now();
        const importCpuStart = cpuEach([pidA]);
        await storeA.importArchive(image.path);
        const imported = performance.now();
        const importCpu = minus(cpuEach([pidA]), importCpuStart);
        const fetchCpuStart = cpuEach([pidA, pidB, pidC]);
        const fetched = await Promise.all([fetchFromPeer(storeB, image.name, fromA()), fetchFromPeer(storeC, image.name, fromA())]);
        if (!fetched.every(Boolean)) throw new Error(`round ${round}: A did not offer ${image.name}`);
        await Promise.all([storeB.resolve(image.name), storeC.resolve(image.name)]);
        return { importMs: imported - started, fetchMs: performance.now() - imported, importCpu, fetchCpu: minus(cpuEach([pidA, pidB, pidC]), fetchCpuStart) };
      };
      let floorRun: { ms: number; cpuMs: number };
      let hivemind: { importMs: number; fetchMs: number; importCpu: number[]; fetchCpu: number[] };
      if (round % 2 === 1) {
        floorRun = await floor();
        hivemind = await ours();
      } else {
        hivemind = await ours();
        floorRun = await floor();
      }
      const ctrImportMs = floorRun.ms;
      const importCpuMs = sum(hivemind.importCpu);
      const fetchCpuPerNodeMs = sum(hivemind.fetchCpu) / 2;
      const [benchmarkFetch, containerdAFetch, containerdB, containerdC] = hivemind.fetchCpu as [number, number, number, number];
      const [benchmarkImport, containerdAImport] = hivemind.importCpu as [number, number];
      rssBytesMax = Math.max(rssBytesMax, process.memoryUsage().rss);
      const readyOnThreeMs = hivemind.importMs + hivemind.fetchMs;
      const entry: ImagesRound = {
        round,
        imageBytes: image.bytes,
        ctrImportMs: Math.round(ctrImportMs),
        importMs: Math.round(hivemind.importMs),
        fetchMs: Math.round(hivemind.fetchMs),
        readyOnThreeMs: Math.round(readyOnThreeMs),
        ratio: Number((readyOnThreeMs / ctrImportMs).toFixed(2)),
        ctrImportCpuMs: Math.round(floorRun.cpuMs),
        importCpuMs: Math.round(importCpuMs),
        fetchCpuPerNodeMs: Math.round(fetchCpuPerNodeMs),
        fetchCpuByProcessMs: { benchmark: benchmarkFetch, containerdA: containerdAFetch, containerdB, containerdC },
        importCpuByProcessMs: { benchmark: benchmarkImport, containerdA: containerdAImport },
        cpuRatio: Number(((importCpuMs + fetchCpuPerNodeMs) / floorRun.cpuMs).toFixed(2)),
      };
      rounds.push(entry);
      console.log(`round ${round}: image ${(image.bytes / 2 ** 20).toFixed(1)} MiB  ctr image import (1 node) ${entry.ctrImportMs} ms  hivemind: import ${entry.importMs} ms + fetch to 2 nodes ${entry.fetchMs} ms = ready on 3 nodes ${entry.readyOnThreeMs} ms  ratio ${entry.ratio}x; CPU: ctr ${entry.ctrImportCpuMs} ms, hivemind import ${entry.importCpuMs} ms + fetch ${entry.fetchCpuPerNodeMs} ms per node, ratio ${entry.cpuRatio}x (import: benchmark ${benchmarkImport}, containerd A ${containerdAImport}; fetch: benchmark ${benchmarkFetch}, containerd A ${containerdAFetch}, B ${containerdB}, C ${containerdC})  load ${loadavg()[0]!.toFixed(2)}`);
      await rm(image.path, { force: true });
    }
    const ratios = rounds.map((entry) => entry.ratio).sort((a, b) => a - b);
    const medianRatio = ratios[Math.floor(ratios.length / 2)] ?? 0;
    const cpuRatios = rounds.map((entry) => entry.cpuRatio).sort((a, b) => a - b);
    const medianCpuRatio = cpuRatios[Math.floor(cpuRatios.length / 2)] ?? 0;
    console.log(`median ratio ${medianRatio}x (target <= 2x); median CPU ratio ${medianCpuRatio}x (import + one node's fetch against ctr's import: what three separate hosts would wait for); benchmark process rss max ${(rssBytesMax / 2 ** 20).toFixed(0)} MiB`);
    if (options.json) console.log(JSON.stringify({ benchmark: 'executor', mode: 'images', imageMib: options.imageMib, loadAverage: loadavg()[0], rounds, medianRatio, medianCpuRatio, rssBytesMax }));
  } finally {
    for (const remote of remotes) remote.close();
    server.forceShutdown();
    for (const client of clients) client.close();
    for (const node of nodes) await node.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}
