// What the containerd tests share: a real containerd of their own (root,
// state and socket in a short temporary folder, started through
// OwnContainerd and stopped at the end), the busybox image built from the
// node's /bin/busybox, and a reason to skip when containerd or runc is absent.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkloadSpec } from '../../runtime.js';
import { ContainerdRuntime } from '../containerd-runtime.js';
import { CniNetwork } from '../network.js';
import { ContainerdClient } from '../client.js';
import { buildBusyboxImage, type BuiltLayout } from '../oci-layout.js';
import { findExecutable, OwnContainerd } from '../own-containerd.js';

/** Why the containerd tests cannot run here, or undefined when they can. */
export function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'containerd tests need root';
  for (const binary of ['containerd', 'runc']) if (findExecutable(binary) === undefined) return `${binary} is not installed (apt-get install containerd runc)`;
  if (!existsSync('/bin/busybox')) return 'busybox-static is not installed (/bin/busybox)';
  return undefined;
}

/** A containerd of the test's own, with the busybox image archive built. */
export class TestContainerd {
  dataDir = '';
  own: OwnContainerd | undefined;
  client: ContainerdClient | undefined;
  image: BuiltLayout | undefined;
  archivePath = '';
  readonly lines: string[] = [];

  async start(): Promise<void> {
    // Short: the socket path must fit in 108 bytes.
    this.dataDir = await mkdtemp('/tmp/hmc-');
    this.own = new OwnContainerd({ dataDir: this.dataDir, log: (line) => this.lines.push(line) });
    await this.own.start();
    this.client = new ContainerdClient({ socketPath: this.own.socketPath });
    await this.client.ensureNamespace();
    this.archivePath = join(this.dataDir, 'busybox.tar');
    this.image = await buildBusyboxImage({ outputPath: this.archivePath });
  }

  /** Stops containerd and removes its folder (tests remove their containers first; leftovers are killed by the shim cleanup below). */
  async stop(): Promise<void> {
    this.client?.close();
    await this.own?.stop();
    if (this.dataDir !== '') {
      // Unmount whatever snapshots stayed mounted, then remove the folder.
      const { spawnSync } = await import('node:child_process');
      const mounts = spawnSync('sh', ['-c', `grep -o ' ${this.dataDir}[^ ]*' /proc/mounts | sort -r`], { encoding: 'utf8' }).stdout.split('\n').map((line) => line.trim()).filter(Boolean);
      for (const mount of mounts) spawnSync('umount', ['-l', mount]);
      await rm(this.dataDir, { recursive: true, force: true });
    }
  }
}

/** A runtime and its bridge, as `openTestRuntime` makes them. */
export interface TestRuntime {
  runtime: ContainerdRuntime;
  network: CniNetwork;
}

/**
 * A runtime on `containerd`'s socket with a CNI bridge of its own (`bridge`,
 * on `subnet`) and the busybox image imported: where the runtime tests start.
 */
export async function openTestRuntime(containerd: TestContainerd, options: { bridge: string; subnet: string; warmNetworks?: number }): Promise<TestRuntime> {
  const network = new CniNetwork({ stateDir: join(containerd.dataDir, 'cni'), bridge: options.bridge, subnet: options.subnet });
  const warm = options.warmNetworks !== undefined ? { warmNetworks: options.warmNetworks } : {};
  const runtime = new ContainerdRuntime({ dataDir: containerd.dataDir, log: () => undefined, socketPath: containerd.own!.socketPath, manageContainerd: false, network, ...warm });
  await runtime.open();
  await runtime.importImage(containerd.archivePath);
  return { runtime, network };
}

/** Removes every workload the runtime still has (what a failed test left), closes it and removes its bridge. */
export async function closeTestRuntime({ runtime, network }: TestRuntime): Promise<void> {
  for (const workload of await runtime.list().catch(() => [])) await runtime.remove(workload.id).catch(() => undefined);
  await runtime.close();
  await network.removeBridge();
}

/** Waits until `check` answers true, polling every 50 ms, or fails after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The busybox image the harness builds, by the name the tests import it under. */
const BUSYBOX_IMAGE = 'hivemind.local/busybox:latest';

/** A workload of the busybox image with every field at a plain default, logging under `dataDir/logs`. */
export function busyboxWorkload(dataDir: string, id: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    id,
    tenant: 'default',
    app: 'test',
    version: 1,
    specHash: `hash-${id}`,
    image: BUSYBOX_IMAGE,
    environment: {},
    readOnly: false,
    ports: [],
    limits: {},
    mounts: [],
    secrets: [],
    logPath: join(dataDir, 'logs', `${id}.log`),
    stopSignal: 'SIGTERM',
    stopGraceMs: 1_000,
    labels: {},
    ...overrides,
  };
}

/** The node's iptables rules, every table (`iptables-save`). */
export function iptablesSave(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('iptables-save', [], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });
}
