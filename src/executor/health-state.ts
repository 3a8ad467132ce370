/**
 * The health of one workload as Compose's `healthcheck` defines it. Pure and
 * synchronous; time comes in as `nowMs`.
 *
 * A workload starts `starting`. A passing probe makes it `healthy` and
 * clears the failure streak. A failing probe adds to the streak, except
 * during the start period (`startPeriodMs` after the start) while it has
 * never been healthy: those failures do not count. `retries` failures in a
 * row make it `unhealthy` (at least one). Probes run `intervalMs` after the
 * previous one ended; the first runs `intervalMs` after the start, or as
 * soon as FIRST_PROBE_MS_MAX has passed when the interval is longer (so a
 * healthy instance does not wait 30 s of Compose's default interval to say
 * so).
 */

import type { HealthcheckSpec } from '../state/types.js';

/** The longest wait before the first probe. */
export const FIRST_PROBE_MS_MAX = 1000;

export type HealthState = 'starting' | 'healthy' | 'unhealthy';

export interface Health {
  state: HealthState;
  failingStreak: number;
  startedAtMs: number;
  /** When the next probe is due. */
  nextProbeAtMs: number;
  /** The last failure's description, for the status message. */
  lastFailure?: string;
}

/** The health of a workload that started at `startedAtMs`. */
export function initialHealth(spec: HealthcheckSpec, startedAtMs: number): Health {
  return { state: 'starting', failingStreak: 0, startedAtMs, nextProbeAtMs: startedAtMs + Math.min(spec.intervalMs, FIRST_PROBE_MS_MAX) };
}

/** The health after a probe that ended at `nowMs`. `failure` is undefined for a pass. */
export function recordProbe(spec: HealthcheckSpec, health: Health, nowMs: number, failure: string | undefined): Health {
  const nextProbeAtMs = nowMs + spec.intervalMs;
  if (failure === undefined) return { state: 'healthy', failingStreak: 0, startedAtMs: health.startedAtMs, nextProbeAtMs };
  const inStartPeriod = health.state === 'starting' && nowMs - health.startedAtMs < spec.startPeriodMs;
  if (inStartPeriod) return { ...health, nextProbeAtMs, lastFailure: failure };
  const failingStreak = health.failingStreak + 1;
  const state: HealthState = failingStreak >= Math.max(1, spec.retries) ? 'unhealthy' : health.state;
  return { state, failingStreak, startedAtMs: health.startedAtMs, nextProbeAtMs, lastFailure: failure };
}

/** Whether a probe is due. */
export function probeDue(health: Health, nowMs: number): boolean {
  return nowMs >= health.nextProbeAtMs;
}

/** How a health check's `test` is run: by the runtime in the workload, or by the agent over the network. */
export type ProbeKind =
  | { type: 'exec'; argv: string[] }
  | { type: 'http'; url: string }
  | { type: 'tcp'; host: string; port: number }
  | { type: 'none' };

/** Reads Compose's `test` (with Hivemind's HTTP and TCP forms, see src/appfile/healthcheck.ts). */
export function probeKind(test: string[]): ProbeKind {
  const [kind, ...rest] = test;
  switch (kind) {
    case 'CMD':
      return { type: 'exec', argv: rest };
    case 'CMD-SHELL':
      return { type: 'exec', argv: ['/bin/sh', '-c', rest.join(' ')] };
    case 'HTTP':
      return { type: 'http', url: rest[0] ?? '' };
    case 'TCP': {
      const target = rest[0] ?? '';
      const colon = target.lastIndexOf(':');
      const host = target.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
      return { type: 'tcp', host, port: Number(target.slice(colon + 1)) };
    }
    default:
      return { type: 'none' };
  }
}
