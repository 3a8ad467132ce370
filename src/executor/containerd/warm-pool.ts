/**
 * A warm pool of network namespaces for the containerd runtime: up to
 * `size` namespaces made ahead of time and already attached to the node
 * network (CNI `loopback` and `bridge` with host-local IPAM, no ports), so a
 * container start takes one instead of paying for `ip netns add` and the
 * plugin processes on its critical path. Production CNIs keep warm
 * addresses for the same reason (the AWS VPC CNI's warm pool).
 *
 * Identity. Each entry has its own name, `hm-w-<12 hex>`, used as the
 * `ip netns` name AND as the CNI container id, so CNI DEL and the release of
 * its host-local lease work exactly as for any attach made under that id.
 * The runtime records the name on the container that takes it (label
 * `hivemind.network-id`), which is where stop and remove look after an
 * agent restart.
 *
 * Durable state. One record file per entry, `<folder>/<name>.json`, written
 * BEFORE the namespace exists (`making`) and rewritten once the attach is
 * done (`ready`, with the address). A taken entry's record is removed; the
 * container's label then owns the network. On `open`, with the names that
 * containers hold:
 *   - record of a name a container holds: the record is dropped, the network left alone;
 *   - `ready` record whose namespace and CNI result exist: adopted (up to `size`);
 *   - any other record (half made, namespace gone, over `size`): discarded;
 *   - a host-local lease held by an `hm-w-` id that is neither: discarded
 *     (the lease of an attach whose record is lost).
 * Discarding = CNI DEL under the entry's id (the bridge plugin removes the
 * veth and releases the lease), `ip netns delete`, record removed; it never
 * rejects (a failure is logged and the record kept, so the next open retries).
 *
 * Refill. One entry at a time, in the background, and never while a start
 * is in flight (`beginStart`/`endStart`): a burst of starts on 2 cores must
 * not compete with its own refill. It begins REFILL_QUIET_MS after the last
 * start ended. A start that finds the pool empty takes the inline path.
 *
 * A used namespace never comes back: `take` hands an entry out for good;
 * the container's stop and remove detach and delete it as any other.
 * `close()` stops refilling and keeps the free entries (a crashed agent's
 * entries are adopted the same way); `drain()` discards them.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../../../consensus/core/assert.js';
import type { PortSpec } from '../../state/types.js';
import { forEachAtOnce } from './at-once.js';
import { createNamedNetns, deleteNamedNetns, netnsPathOfName, type ContainerNetwork } from './network.js';

/** The prefix of every pool entry's name (netns name and CNI container id). */
export const WARM_NETWORK_PREFIX = 'hm-w-';
/** Whether `name` is a pool entry's name (`hm-w-` and 12 lowercase hex characters). */
export function isWarmNetworkName(name: string): boolean {
  return /^hm-w-[0-9a-f]{12}$/.test(name);
}

/** Largest pool size a node accepts (each entry holds an address, a veth pair and a namespace). */
export const WARM_NETWORKS_MAX = 256;
/** Refill starts this long after the last start in flight ended. */
export const REFILL_QUIET_MS = 50;
/** After a failed refill, wait this long before trying again. */
export const REFILL_RETRY_MS = 5_000;
/** Entries discarded at once by `drain` and `open`. */
const DISCARDS_AT_ONCE = 4;

/** The network a pool needs: a `ContainerNetwork` that can publish ports later and list its leases. */
export interface PoolNetwork extends ContainerNetwork {
  /** Publishes `ports` for a namespace attached under `id` without ports (portmap ADD with the saved result). */
  publish(id: string, netnsPath: string, ports: PortSpec[]): Promise<void>;
  /** Whether the result of a finished attach under `id` is saved. */
  hasResult(id: string): boolean;
  /** The CNI container ids holding an address lease. */
  leasedIds(): Promise<string[]>;
  /** Whether what the warm attaches hang on (the node bridge) is still there; when not, every free entry is dead. */
  attachable(): boolean;
  /** Whether `address` is in the subnet attaches use now; an entry made on an older subnet (the node's overlay subnet changed) is dead. Absent: always. */
  holds?(address: string): boolean;
}

/** Whether `network` can back a warm pool. */
export function isPoolNetwork(network: ContainerNetwork): network is PoolNetwork {
  const candidate = network as Partial<PoolNetwork>;
  return typeof candidate.publish === 'function' && typeof candidate.hasResult === 'function' && typeof candidate.leasedIds === 'function' && typeof candidate.attachable === 'function';
}

/** A ready entry, handed to one container start for good. */
export interface WarmNetwork {
  /** `hm-w-<hex>`: the netns name and the CNI container id. */
  name: string;
  netnsPath: string;
  /** The IPv4 address the attach gave. */
  address: string;
}

interface PoolRecord {
  name: string;
  state: 'making' | 'ready';
  address?: string;
}

/** Settings of a WarmNetworkPool. */
export interface WarmNetworkPoolOptions {
  network: PoolNetwork;
  /** Where the record files live (the runtime's `<dataDir>/containerd-runtime/warm-networks`). */
  folder: string;
  /** Entries kept ready, 0..WARM_NETWORKS_MAX; 0 makes none (and `open` discards any left). */
  size: number;
  log: (line: string) => void;
  /** A new entry's name suffix (12 hex characters); random by default. */
  newSuffix?: () => string;
}

/** The pool. Construct, `open(namesInUse)`, `take()` on starts, `close()` or `drain()`. */
export class WarmNetworkPool {
  readonly size: number;
  private readonly network: PoolNetwork;
  private readonly folder: string;
  private readonly log: (line: string) => void;
  private readonly newSuffix: () => string;
  /** Ready entries, oldest first. */
  private readonly free: WarmNetwork[] = [];
  private startsInFlight = 0;
  private opened = false;
  private closed = false;
  /** The background work (discards of open, then refills) under way, if any. */
  private working: Promise<void> | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  /** Entries discarded by `take` (broken), whose release runs in the background. */
  private readonly discarding = new Set<Promise<void>>();

  constructor(options: WarmNetworkPoolOptions) {
    if (!Number.isSafeInteger(options.size) || options.size < 0 || options.size > WARM_NETWORKS_MAX) {
      throw new RangeError(`warm networks: size must be a whole number from 0 to ${WARM_NETWORKS_MAX}, got ${options.size}`);
    }
    this.size = options.size;
    this.network = options.network;
    this.folder = options.folder;
    this.log = options.log;
    this.newSuffix = options.newSuffix ?? (() => randomBytes(6).toString('hex'));
  }

  /** Ready entries now. */
  get count(): number {
    return this.free.length;
  }

  /** The names of the ready entries, oldest first (tests, diagnostics). */
  names(): string[] {
    return this.free.map((entry) => entry.name);
  }

  /** Copies of the ready entries, oldest first (tests, diagnostics). */
  entries(): WarmNetwork[] {
    return this.free.map((entry) => ({ ...entry }));
  }

  /**
   * Adopts the entries a previous agent left and discards the broken ones
   * (see the file header); `namesInUse` are the pool names that containers
   * hold. Adoption is done when this resolves; discards and the first
   * refill go on in the background (`settled()` waits for them).
   */
  async open(namesInUse: ReadonlySet<string>): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    await mkdir(this.folder, { recursive: true, mode: 0o700 });
    const toDiscard: string[] = [];
    const recorded = new Set<string>();
    for (const file of await readdir(this.folder)) {
      if (!file.endsWith('.json')) {
        // A record write that never finished its rename.
        await rm(join(this.folder, file), { force: true });
        continue;
      }
      const name = file.slice(0, -'.json'.length);
      if (!isWarmNetworkName(name)) continue;
      recorded.add(name);
      if (namesInUse.has(name)) {
        await rm(this.recordPath(name), { force: true });
        continue;
      }
      const record = await this.readRecord(name);
      const netnsPath = netnsPathOfName(name);
      const valid = record?.state === 'ready' && record.address !== undefined && existsSync(netnsPath) && this.network.hasResult(name);
      if (valid && this.free.length < this.size) this.free.push({ name, netnsPath, address: record.address! });
      else toDiscard.push(name);
    }
    for (const id of await this.network.leasedIds()) {
      if (isWarmNetworkName(id) && !recorded.has(id) && !namesInUse.has(id)) toDiscard.push(id);
    }
    if (this.free.length > 0) this.log(`warm networks: adopted ${this.free.length} from the previous run`);
    if (toDiscard.length > 0) this.log(`warm networks: discarding ${toDiscard.length} broken, half-made or surplus: ${toDiscard.join(', ')}`);
    void this.run(async () => {
      await forEachAtOnce(toDiscard, DISCARDS_AT_ONCE, (name) => this.discard(name));
    });
    this.scheduleRefill(0);
  }

  /**
   * Hands out the oldest ready entry whose namespace still exists, or
   * undefined when none is left (the caller attaches inline). An entry whose
   * namespace is gone is discarded, never handed out; when the node bridge is
   * gone, every entry is (their veths hang on nothing; the inline attach
   * makes the bridge again); so is an entry whose address is not in the
   * subnet attaches use now (the node's overlay subnet changed). The caller owns the entry from here: it
   * detaches and deletes it with its container.
   */
  take(): WarmNetwork | undefined {
    if (this.free.length > 0 && !this.network.attachable()) {
      const dead = this.free.splice(0);
      this.log(`warm networks: the node bridge is gone; discarding ${dead.map((entry) => entry.name).join(', ')}`);
      this.discardInBackground(dead.map((entry) => entry.name));
      return undefined;
    }
    for (;;) {
      const entry = this.free.shift();
      if (entry === undefined) return undefined;
      if (this.network.holds?.(entry.address) === false) {
        this.log(`warm networks: ${entry.name}: its address ${entry.address} is not in the node's subnet now; discarded`);
        this.discardInBackground([entry.name]);
        continue;
      }
      if (existsSync(entry.netnsPath)) {
        // The container's label owns it from now; a crash before that label exists leaves the record, and the entry is adopted again.
        void rm(this.recordPath(entry.name), { force: true }).catch(() => undefined);
        return entry;
      }
      this.log(`warm networks: ${entry.name}: its namespace is gone; discarded`);
      this.discardInBackground([entry.name]);
    }
  }

  /** Discards `names` beside the refill (a taken start must not wait for it); `settled` and `close` wait for them. */
  private discardInBackground(names: string[]): void {
    const discarding: Promise<void> = forEachAtOnce(names, DISCARDS_AT_ONCE, (name) => this.discard(name)).finally(() => this.discarding.delete(discarding));
    this.discarding.add(discarding);
  }

  /** A container start begins: no refill runs until every start has ended. */
  beginStart(): void {
    this.startsInFlight += 1;
    if (this.refillTimer !== undefined) {
      clearTimeout(this.refillTimer);
      this.refillTimer = undefined;
    }
  }

  /** A container start ended (either way): refill once none is left in flight. */
  endStart(): void {
    assert(this.startsInFlight > 0, 'warm networks: endStart without beginStart');
    this.startsInFlight -= 1;
    if (this.startsInFlight === 0) this.scheduleRefill(REFILL_QUIET_MS);
  }

  /** Resolves once no background work (discard, refill) is under way and none is scheduled. */
  async settled(): Promise<void> {
    for (;;) {
      const pending = [...(this.working ? [this.working] : []), ...this.discarding];
      if (pending.length === 0 && this.refillTimer === undefined) return;
      if (pending.length === 0) await new Promise((resolve) => setTimeout(resolve, REFILL_QUIET_MS));
      else await Promise.all(pending);
    }
  }

  /** Stops refilling and waits for the work under way; ready entries stay for the next open. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refillTimer !== undefined) clearTimeout(this.refillTimer);
    this.refillTimer = undefined;
    await Promise.all([this.working, ...this.discarding]);
  }

  /** `close()`, then discards every ready entry (graceful agent stop, tests, uninstall). */
  async drain(): Promise<void> {
    await this.close();
    const names = this.free.splice(0).map((entry) => entry.name);
    await forEachAtOnce(names, DISCARDS_AT_ONCE, (name) => this.discard(name));
  }

  // ---- background work ----

  /** Chains `work` after the background work under way (one thing at a time). */
  private run(work: () => Promise<void>): Promise<void> {
    const previous = this.working ?? Promise.resolve();
    const next = previous.then(work).catch((error: Error) => this.log(`warm networks: ${error.message}`));
    const tracked = next.finally(() => {
      if (this.working === tracked) this.working = undefined;
    });
    this.working = tracked;
    return tracked;
  }

  private scheduleRefill(delayMs: number): void {
    if (this.closed || this.startsInFlight > 0 || this.refillTimer !== undefined) return;
    if (this.free.length >= this.size) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      void this.run(() => this.refillOne());
    }, delayMs);
    this.refillTimer.unref();
  }

  /** Makes one entry when the pool is short and no start is in flight, then schedules the next. */
  private async refillOne(): Promise<void> {
    if (this.closed || this.startsInFlight > 0 || this.free.length >= this.size) return;
    const name = `${WARM_NETWORK_PREFIX}${this.newSuffix()}`;
    assert(isWarmNetworkName(name), () => `warm networks: bad entry name ${JSON.stringify(name)}`);
    try {
      await this.writeRecord({ name, state: 'making' });
      const netnsPath = await createNamedNetns(name, 'a warm network');
      const { address } = await this.network.attach(name, netnsPath, []);
      await this.writeRecord({ name, state: 'ready', address });
      this.free.push({ name, netnsPath, address });
    } catch (error) {
      this.log(`warm networks: cannot make ${name} (retrying in ${REFILL_RETRY_MS} ms): ${(error as Error).message}`);
      await this.discard(name);
      if (!this.closed && this.refillTimer === undefined && this.startsInFlight === 0) {
        this.refillTimer = setTimeout(() => {
          this.refillTimer = undefined;
          this.scheduleRefill(0);
        }, REFILL_RETRY_MS);
        this.refillTimer.unref();
      }
      return;
    }
    this.scheduleRefill(0);
  }

  /** Detaches and deletes entry `name` and its record. Never rejects; keeps the record when something failed. */
  private async discard(name: string): Promise<void> {
    const netnsPath = netnsPathOfName(name);
    try {
      // detach sends CNI no namespace for a path no mount holds (missing, or stale).
      await this.network.detach(name, netnsPath, []);
      await deleteNamedNetns(name);
      await rm(this.recordPath(name), { force: true });
    } catch (error) {
      this.log(`warm networks: cannot discard ${name} (the next open tries again): ${(error as Error).message}`);
    }
  }

  // ---- records ----

  private recordPath(name: string): string {
    return join(this.folder, `${name}.json`);
  }

  private async readRecord(name: string): Promise<PoolRecord | undefined> {
    try {
      const record = JSON.parse(await readFile(this.recordPath(name), 'utf8')) as PoolRecord;
      return record.name === name ? record : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes a record whole or not at all (temp file, then rename). */
  private async writeRecord(record: PoolRecord): Promise<void> {
    const path = this.recordPath(record.name);
    await writeFile(`${path}.tmp`, JSON.stringify(record), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}
