/**
 * Service VIPs: the choice of an app's virtual IP in the cluster's service
 * CIDR. Pure (no Node API): apply handlers call it inside a commit, so every
 * node gives the same app the same VIP for the same log.
 *
 * An app holds a VIP from the first commit that finds it with ports and a
 * service CIDR configured (its deploy, or the `network.configure` that sets
 * the service CIDR), until it is deleted: a later version without ports, or
 * a rollback, keeps it, so a name never moves under its clients. The lowest
 * free address wins (the network address and the broadcast address are
 * never handed out), so a deleted app's VIP is reused by the next app.
 */
import { assert } from '../../consensus/core/assert.js';
import { containsAddress, formatIpv4, parseCidr, parseIpv4 } from './ipam.js';
import type { ClusterState } from './state.js';
import { currentSpec } from './state.js';
import type { App } from './types.js';

/** The service CIDR a cluster gets when its first leader is given none. */
export const DEFAULT_SERVICE_CIDR = '10.211.0.0/16';
/** The shortest service prefix accepted. */
export const SERVICE_PREFIX_LENGTH_MIN = 8;
/** The longest service prefix accepted: a /28 holds 14 VIPs. */
export const SERVICE_PREFIX_LENGTH_MAX = 28;

/** Why `serviceCidr` cannot be the service range beside cluster network `clusterCidr`, or undefined when it can. */
export function serviceCidrProblem(serviceCidr: string, clusterCidr: string): string | undefined {
  const parsed = parseCidr(serviceCidr);
  if (!parsed.ok) return parsed.reason;
  const { base, prefixLength } = parsed.network;
  if (prefixLength < SERVICE_PREFIX_LENGTH_MIN || prefixLength > SERVICE_PREFIX_LENGTH_MAX) {
    return `"${serviceCidr}" is a /${prefixLength}; a service range is a /${SERVICE_PREFIX_LENGTH_MIN} to a /${SERVICE_PREFIX_LENGTH_MAX}`;
  }
  const cluster = parseCidr(clusterCidr);
  if (cluster.ok && (containsAddress(cluster.network, base) || containsAddress(parsed.network, cluster.network.base))) {
    return `"${serviceCidr}" overlaps the cluster network ${clusterCidr}; choose a range apart from it`;
  }
  return undefined;
}

/** Free VIPs of one service range, lowest first: one pass over the apps, then each `next` continues where the last stopped. */
export class VipCursor {
  readonly #held = new Set<number>();
  readonly #base: number;
  readonly #size: number;
  #offset = 1;

  constructor(serviceCidr: string, apps: Iterable<App>) {
    const parsed = parseCidr(serviceCidr);
    assert(parsed.ok, `service CIDR ${serviceCidr} was validated when configured`);
    this.#base = parsed.network.base;
    this.#size = 2 ** (32 - parsed.network.prefixLength);
    for (const app of apps) if (app.vip !== undefined) this.#held.add(parseIpv4(app.vip)!);
  }

  /** The lowest free address not handed out by this cursor yet (never the network or broadcast address), or undefined when none is left. */
  next(): string | undefined {
    for (; this.#offset < this.#size - 1; this.#offset++) {
      const address = this.#base + this.#offset;
      if (this.#held.has(address)) continue;
      this.#held.add(address);
      return formatIpv4(address);
    }
    return undefined;
  }
}

/** The lowest address of `serviceCidr` that no app in `apps` holds, or undefined when every one is held. Linear in the app count. */
export function lowestFreeVip(serviceCidr: string, apps: Iterable<App>): string | undefined {
  return new VipCursor(serviceCidr, apps).next();
}

/** Whether `app` should hold a VIP: its current spec has ports. */
export function wantsVip(app: App): boolean {
  return currentSpec(app).ports.length > 0;
}

/**
 * Gives `app` the lowest free VIP when the service CIDR is configured, the
 * app has ports and holds none. Answers the VIP given, or undefined (none
 * needed, or the range is full: the app goes without, and its name answers
 * its instances' addresses). Call only inside a commit, after the app's
 * record is stored.
 */
export function maybeAllocateVip(state: ClusterState, app: App): string | undefined {
  const serviceCidr = state.network?.serviceCidr;
  if (serviceCidr === undefined || app.vip !== undefined || !wantsVip(app)) return undefined;
  const vip = lowestFreeVip(serviceCidr, state.apps.values());
  if (vip !== undefined) app.vip = vip;
  return vip;
}

/** Gives a VIP to every app that should hold one and does not, in state order; answers how many got one and how many could not. */
export function allocateMissingVips(state: ClusterState): { allocated: number; unallocated: number } {
  const outcome = { allocated: 0, unallocated: 0 };
  const serviceCidr = state.network?.serviceCidr;
  if (serviceCidr === undefined) return outcome;
  const cursor = new VipCursor(serviceCidr, state.apps.values());
  for (const app of state.apps.values()) {
    if (app.vip !== undefined || !wantsVip(app)) continue;
    const vip = cursor.next();
    if (vip === undefined) outcome.unallocated++;
    else {
      app.vip = vip;
      outcome.allocated++;
    }
  }
  return outcome;
}
