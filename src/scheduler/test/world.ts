// Helpers for the scheduler tests that drive the real state machine with SimWorld.
import type { AppSpec } from '../../state/types.js';
import { simSpec, SimWorld } from '../sim.js';
import type { SchedulerOptions } from '../round.js';

export const HEALTHCHECK: NonNullable<AppSpec['healthcheck']> = { test: ['CMD', 'true'], intervalMs: 1000, timeoutMs: 1000, retries: 1, startPeriodMs: 0 };

/** A world of `nodes` up nodes (n1..), with `web` deployed at `replicas` and stepped until every instance is ready. */
export function worldWithWeb(
  { nodes = 3, replicas = 3, spec = {}, scheduler = {} }: { nodes?: number; replicas?: number; spec?: Partial<AppSpec>; scheduler?: Partial<SchedulerOptions> } = {},
): SimWorld {
  const world = new SimWorld({ scheduler: { rescheduleGraceMs: 10_000, progressDeadlineMs: 20_000, ...scheduler } });
  for (let count = 1; count <= nodes; count++) world.addNode(`n${count}`);
  world.ok({ type: 'app.deploy', spec: simSpec('web', { replicas, healthcheck: HEALTHCHECK, ...spec }) });
  const settled = world.runUntil(() => world.ready('default', 'web').length === replicas);
  if (!settled) throw new Error('web did not become ready');
  return world;
}

/** The spec of web's current version with `overrides`: a new version when deployed. */
export function nextSpec(world: SimWorld, overrides: Partial<AppSpec>): AppSpec {
  const app = world.machine.app('default', 'web')!;
  const current = app.versions.find((entry) => entry.version === app.version)!.spec;
  return { ...structuredClone(current), ...overrides };
}

/** Instances of web meant to run, as `version@node` sorted. */
export function runningOf(world: SimWorld, name = 'web'): string[] {
  return world.machine
    .instances({ app: name })
    .filter((instance) => instance.desired === 'running')
    .map((instance) => `v${instance.version}@${instance.node ?? '-'}`)
    .sort();
}
