/**
 * Warm pools for tenant networks: one small `WarmNetworkPool` per slice of
 * a tenant network this node holds (the node network file lists it ready),
 * so a container whose first network is that slice's starts warm, as one
 * on the node subnet does (on several networks, the runtime adds its other
 * interfaces to the entry's namespace: `CniNetwork.attachMore`). A slice is held only while an instance of its
 * network is placed here, so the pools follow placements.
 *
 * Bounds. SLICE_WARM_NETWORKS_MAX entries a slice (never more than the
 * node pool's size), pools for at most SLICE_POOLS_MAX slices (the first
 * in network order; the others start cold).
 *
 * A slice given back. `sync` drains the pool of every slice the file no
 * longer lists ready (or lists with another subnet) and removes its
 * folder. Its entries' veths are ports of the slice's bridge, and the
 * network component never deletes a bridge with a port, so the bridge (and
 * its address store, `device-plan.ts`) goes only after the pool's entries:
 * no address of a released slice outlives the drain. Until `sync` runs, a
 * `take` on it hands out nothing (`attachable` reads the file).
 *
 * Durable state. `<folder>/<bridge>/`, one pool's record files each (see
 * `warm-pool.ts`). The first `sync` of a run discards the pools of bridges
 * not listed (a slice given back while the agent was down): a pool of size
 * 0 opened on the folder discards its records and the leases of `hm-w-`
 * ids left in the slice's store, then the folder goes.
 *
 * `sync` runs one at a time; the runtime calls it when it opens, when the
 * node network file may have changed, and every SLICE_SYNC_INTERVAL_MS as a
 * safety net (SLICE_SYNC_INTERVAL_MS_UNWATCHED while no watch is in place).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PortSpec } from '../../state/types.js';
import { cidrHolds, hasLink, NetworkError, type CniNetwork, type HeldSlice, type NetworkAttachment } from './network.js';
import { WarmNetworkPool, type PoolNetwork, type WarmNetwork } from './warm-pool.js';

/** Entries kept ready per slice, at most. */
export const SLICE_WARM_NETWORKS_MAX = 2;
/** Slices with a pool, at most. */
export const SLICE_POOLS_MAX = 16;
/** How often the runtime syncs the pools with the slices the node holds while a watch on the node network file hears its changes. */
export const SLICE_SYNC_INTERVAL_MS = 30_000;
/** The same while no watch is in place (the file's folder missing, the host's watch limit reached). */
export const SLICE_SYNC_INTERVAL_MS_UNWATCHED = 2_000;

/** The network of one slice's pool: the node's CNI network, attaching on that slice alone. */
class SlicePoolNetwork implements PoolNetwork {
  constructor(
    private readonly cni: CniNetwork,
    /** The slice; a pool only discarding what a former run left knows its bridge alone. */
    private readonly slice: HeldSlice | { bridge: string },
  ) {}

  /** The slice as the node network file lists it now, when it is still this pool's. */
  private listed(): HeldSlice | undefined {
    if (!('network' in this.slice)) return undefined;
    const slice = this.slice;
    return this.cni.heldSlices().find((held) => held.bridge === slice.bridge && held.subnet === slice.subnet);
  }

  async attach(id: string, netnsPath: string, ports: PortSpec[]): Promise<NetworkAttachment> {
    const slice = this.listed();
    if (slice === undefined) throw new NetworkError(`cannot make a warm network on ${this.slice.bridge}: the node does not hold that slice now`);
    return this.cni.attach(id, netnsPath, ports, { tenant: slice.tenant, networks: [slice.name] });
  }

  detach(id: string, netnsPath: string, ports: PortSpec[]): Promise<void> {
    // The saved attach names its bridge and store.
    return this.cni.detach(id, netnsPath, ports);
  }

  publish(id: string, netnsPath: string, ports: PortSpec[]): Promise<void> {
    return this.cni.publish(id, netnsPath, ports);
  }

  hasResult(id: string): boolean {
    return this.cni.hasResult(id);
  }

  leasedIds(): Promise<string[]> {
    return this.cni.leasedIds(this.slice.bridge);
  }

  attachable(): boolean {
    return this.listed() !== undefined && hasLink(this.slice.bridge);
  }

  holds(address: string): boolean {
    return 'subnet' in this.slice && cidrHolds(this.slice.subnet, address);
  }
}

/** Removes a pool's folder once no record is left in it; a record a failed discard kept stays for the next run's sweep. */
async function removeIfDone(folder: string): Promise<void> {
  const left = await readdir(folder).catch(() => []);
  if (left.some((file) => file.endsWith('.json'))) return;
  await rm(folder, { recursive: true, force: true });
}

/** Settings of SliceWarmPools. */
export interface SliceWarmPoolsOptions {
  network: CniNetwork;
  /** Where the pools' folders live (the runtime's `<dataDir>/containerd-runtime/warm-networks-slices`). */
  folder: string;
  /** Entries per slice, 0..SLICE_WARM_NETWORKS_MAX; 0 pools no slice (a sync only discards what a former run left). */
  size: number;
  log: (line: string) => void;
}

/** One pool per held slice. Construct, `sync(namesInUse)` now and then, `take` on starts, `drain` or `close` at the end. */
export class SliceWarmPools {
  private readonly options: SliceWarmPoolsOptions;
  /** By bridge. */
  private readonly pools = new Map<string, { slice: HeldSlice; pool: WarmNetworkPool }>();
  /** The starts in flight, each with the pools it is counted on (`beginStart`). */
  private readonly starts = new Set<Set<WarmNetworkPool>>();
  /** Pools `sync` is opening: not handed out yet, but counted on by the starts (`beginStart`). */
  private readonly opening = new Set<WarmNetworkPool>();
  private syncing: Promise<void> = Promise.resolve();
  private swept = false;
  private closed = false;

  constructor(options: SliceWarmPoolsOptions) {
    if (!Number.isSafeInteger(options.size) || options.size < 0 || options.size > SLICE_WARM_NETWORKS_MAX) {
      throw new RangeError(`warm networks per slice: size must be a whole number from 0 to ${SLICE_WARM_NETWORKS_MAX}, got ${options.size}`);
    }
    this.options = options;
  }

  /** Ready entries over every slice. */
  get count(): number {
    let count = 0;
    for (const { pool } of this.pools.values()) count += pool.count;
    return count;
  }

  /** The pool of the slice of `network` (`tenant/name`), if one is kept (tests, diagnostics). */
  poolOf(network: string): WarmNetworkPool | undefined {
    return [...this.pools.values()].find((each) => each.slice.network === network)?.pool;
  }

  /** A ready entry on this node's slice of `network` (`tenant/name`), or undefined (the caller attaches inline). */
  take(network: string): WarmNetwork | undefined {
    return this.poolOf(network)?.take();
  }

  /**
   * A container start begins: no pool refills until every start has ended.
   * Returns the call that ends it (either way; a second call does nothing).
   * Each start ends on exactly the pools it was counted on: those there
   * when it began (including one `sync` is opening) and those `sync` made
   * while it ran (a new pool counts the starts in flight). Ends once went
   * to every pool there at the end: a start that began while a pool was
   * being opened, before it joined, was never counted on it but ended on
   * it, the pool's count went below zero, and the assertion that caught it
   * failed a start whose container was already running.
   */
  beginStart(): () => void {
    const counted = new Set<WarmNetworkPool>();
    for (const pool of [...[...this.pools.values()].map((entry) => entry.pool), ...this.opening]) {
      pool.beginStart();
      counted.add(pool);
    }
    this.starts.add(counted);
    return () => {
      if (!this.starts.delete(counted)) return;
      for (const pool of counted) pool.endStart();
    };
  }

  /**
   * Makes the pools those of the slices the node holds now (see the file
   * header); `namesInUse` answers the warm names containers hold. One sync
   * at a time; a failure is logged, and the next sync tries again.
   */
  sync(namesInUse: () => Promise<ReadonlySet<string>>): Promise<void> {
    const next = this.syncing.then(() => this.syncOnce(namesInUse)).catch((error: Error) => this.options.log(`warm networks on tenant networks: ${error.message}`));
    this.syncing = next;
    return next;
  }

  private async syncOnce(namesInUse: () => Promise<ReadonlySet<string>>): Promise<void> {
    if (this.closed) return;
    const held = this.options.size === 0 ? [] : this.options.network.heldSlices().sort((a, b) => a.network.localeCompare(b.network)).slice(0, SLICE_POOLS_MAX);
    for (const [bridge, { slice, pool }] of [...this.pools]) {
      if (held.some((each) => each.bridge === bridge && each.subnet === slice.subnet)) continue;
      this.pools.delete(bridge);
      this.options.log(`warm networks: the node gave back its slice ${slice.subnet} of ${slice.network}; discarding its ${pool.count} warm networks`);
      await pool.drain();
      await removeIfDone(join(this.options.folder, bridge));
    }
    if (!this.swept) {
      await this.sweep(held, namesInUse);
      this.swept = true;
    }
    const missing = held.filter((slice) => !this.pools.has(slice.bridge));
    if (missing.length === 0) return;
    const inUse = await namesInUse();
    for (const slice of missing) {
      if (this.closed) return;
      const folder = join(this.options.folder, slice.bridge);
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const pool = new WarmNetworkPool({ network: new SlicePoolNetwork(this.options.network, slice), folder, size: this.options.size, log: this.options.log });
      for (const counted of this.starts) {
        pool.beginStart();
        counted.add(pool);
      }
      // Starts that begin while it opens are counted on it too.
      this.opening.add(pool);
      try {
        await pool.open(inUse);
      } finally {
        this.opening.delete(pool);
      }
      this.pools.set(slice.bridge, { slice, pool });
    }
  }

  /** Discards the pools a former run left for bridges not held now: a pool of size 0 on each folder, then the folder. */
  private async sweep(held: readonly HeldSlice[], namesInUse: () => Promise<ReadonlySet<string>>): Promise<void> {
    if (!existsSync(this.options.folder)) return;
    const left = (await readdir(this.options.folder)).filter((bridge) => !held.some((slice) => slice.bridge === bridge));
    if (left.length === 0) return;
    const inUse = await namesInUse();
    for (const bridge of left) {
      const pool = new WarmNetworkPool({ network: new SlicePoolNetwork(this.options.network, { bridge }), folder: join(this.options.folder, bridge), size: 0, log: this.options.log });
      await pool.open(inUse);
      await pool.settled();
      await removeIfDone(join(this.options.folder, bridge));
    }
  }

  /** Stops the syncs and refills; ready entries stay for the next run (a crash's are adopted the same way). */
  async close(): Promise<void> {
    this.closed = true;
    await this.syncing;
    await Promise.all([...this.pools.values()].map(({ pool }) => pool.close()));
  }

  /** `close()`, then discards every ready entry. */
  async drain(): Promise<void> {
    this.closed = true;
    await this.syncing;
    await Promise.all([...this.pools.values()].map(({ pool }) => pool.drain()));
  }
}
