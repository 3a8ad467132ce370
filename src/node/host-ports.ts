/**
 * The ports a node's host listens on, as the scheduler needs them: no
 * instance may be placed where it would publish a port a host process
 * holds (the DNAT of a container's published port would silently take the
 * host process's traffic; a process app could not bind it).
 *
 * Pure: the caller reads `/proc/self/net/{tcp,tcp6,udp,udp6}` (the node's own
 * network namespace: the host's, or a test host's) and hands the text in.
 */
import type { HostPorts, Instance, AppSpec } from '../state/types.js';
import { HOST_PORTS_MAX } from '../state/types.js';
import { assert } from '../../consensus/core/assert.js';

/** TCP's LISTEN state in /proc/net/tcp (`st` column, hex). */
const TCP_LISTEN = '0A';

/**
 * The local ports of `/proc/net/tcp`-style `text` that listen: TCP sockets in
 * LISTEN, UDP sockets with no remote end (bound, unconnected). Lines that do
 * not parse are skipped (the header, a truncated last line).
 */
export function listeningPorts(text: string, protocol: 'tcp' | 'udp'): Set<number> {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || !fields[0]!.endsWith(':')) continue;
    const local = fields[1]!;
    const remote = fields[2]!;
    const state = fields[3]!;
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (!Number.isInteger(port) || port <= 0 || port > 65_535) continue;
    if (protocol === 'tcp' ? state === TCP_LISTEN : remote.endsWith(':0000')) ports.add(port);
  }
  return ports;
}

/** What a node's report is made of (see `hostPortsReport`). */
export interface HostPortsInput {
  /** Ports listening in this scan and in the one before (a socket seen once may be a short-lived client's). */
  scans: [{ tcp: Set<number>; udp: Set<number> }, { tcp: Set<number>; udp: Set<number> }];
  /** Hivemind's own ports: always reported, listening or not. */
  own: { tcp: number[]; udp: number[] };
  /** Ports that instances placed on this node hold (theirs to hold: not a host process's). */
  instances: { tcp: Set<number>; udp: Set<number> };
}

/**
 * The report: Hivemind's own ports, and the ports that listened in both
 * scans and that no instance of this node holds; sorted, each list cut to
 * HOST_PORTS_MAX (own ports first, then the lowest).
 */
export function hostPortsReport(input: HostPortsInput): HostPorts {
  const list = (protocol: 'tcp' | 'udp'): number[] => {
    const own = new Set(input.own[protocol].filter((port) => port > 0 && port <= 65_535));
    const seen = [...input.scans[0][protocol]].filter((port) => input.scans[1][protocol].has(port) && !input.instances[protocol].has(port) && !own.has(port));
    seen.sort((left, right) => left - right);
    const kept = [...own, ...seen].slice(0, HOST_PORTS_MAX);
    return kept.sort((left, right) => left - right);
  };
  return { tcp: list('tcp'), udp: list('udp') };
}

/**
 * The ports the instances placed on a node hold on its host: published
 * ports, and for a process app (no image, so on the host's network) the
 * ports its endpoint reports.
 */
export function instanceHostPorts(instances: readonly Instance[], specOf: (instance: Instance) => AppSpec | undefined): { tcp: Set<number>; udp: Set<number> } {
  const held = { tcp: new Set<number>(), udp: new Set<number>() };
  for (const instance of instances) {
    const spec = specOf(instance);
    for (const port of spec?.ports ?? []) if (port.published !== undefined) held[port.protocol].add(port.published);
    if (spec !== undefined && spec.image === undefined) for (const port of instance.status.endpoint?.ports ?? []) held[port.protocol].add(port.port);
  }
  return held;
}

/** Whether two reports say the same. */
export function sameHostPorts(left: HostPorts | undefined, right: HostPorts): boolean {
  return left !== undefined && left.tcp.join(',') === right.tcp.join(',') && left.udp.join(',') === right.udp.join(',');
}

/** The ports in one report and not in the other (either way), by protocol; every port of `right` when `left` is undefined. */
export function changedHostPorts(left: HostPorts | undefined, right: HostPorts): { tcp: Set<number>; udp: Set<number> } {
  const changed = (before: readonly number[], after: readonly number[]): Set<number> => {
    const beforeSet = new Set(before);
    const afterSet = new Set(after);
    return new Set([...before.filter((port) => !afterSet.has(port)), ...after.filter((port) => !beforeSet.has(port))]);
  };
  return { tcp: changed(left?.tcp ?? [], right.tcp), udp: changed(left?.udp ?? [], right.udp) };
}

/** Reports a node sends at once, one after another, that no placement needs (see `ReportAllowance`). */
export const HOST_PORTS_REPORTS_BURST = 4;

/** After a burst, one more such report per this many ms. */
export const HOST_PORTS_REPORT_REFILL_MS = 30_000;

/**
 * How many host-port reports a node may send that no placement needs: a
 * burst of `burst` at once, then one per `refillMs` (a token bucket). On a
 * busy host other processes' listening ports change every few seconds, and
 * each report is a Raft write every node applies. Deterministic: the time
 * is handed in; a clock that went back gains nothing.
 */
export class ReportAllowance {
  readonly #burst: number;
  readonly #refillMs: number;
  #tokens: number;
  /** When the tokens were last counted up, ms; undefined before the first `take`. */
  #countedAtMs: number | undefined;

  constructor(options: { burst: number; refillMs: number }) {
    assert(Number.isInteger(options.burst) && options.burst >= 1, `a report allowance needs a burst of at least 1, not ${options.burst}`);
    assert(Number.isFinite(options.refillMs) && options.refillMs > 0, `a report allowance needs a positive refill time, not ${options.refillMs}`);
    this.#burst = options.burst;
    this.#refillMs = options.refillMs;
    this.#tokens = options.burst;
  }

  /** Takes one report's allowance at `nowMs`; false (and nothing taken) when there is none left. */
  take(nowMs: number): boolean {
    if (this.#countedAtMs === undefined || nowMs < this.#countedAtMs) this.#countedAtMs = nowMs;
    const gained = Math.floor((nowMs - this.#countedAtMs) / this.#refillMs);
    if (gained > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + gained);
      this.#countedAtMs = this.#tokens === this.#burst ? nowMs : this.#countedAtMs + gained * this.#refillMs;
    }
    if (this.#tokens === 0) return false;
    // Counting starts when the bucket is first drawn from full: a full bucket gains nothing while it waits.
    if (this.#tokens === this.#burst) this.#countedAtMs = nowMs;
    this.#tokens--;
    return true;
  }
}
