/**
 * Seeds that once found a problem in the whole-cluster simulator, with what
 * they found; `npm test` runs each and requires no violation.
 */
export const CLUSTER_REGRESSION_SEEDS: readonly { seed: number; found: string }[] = [
  {
    seed: 182,
    found: 'a new leader\'s scheduler placed the instances of a node down past the grace elsewhere; the voter manager marked the node up before the placement applied, so the instances were moved off a node that is up (placed twice); instance.place now refuses that (conflict)',
  },
  { seed: 4129, found: 'an automatic rollback restored a version that asked for more than the tenant\'s lowered quota allowed (usage grew past the quota); a rollback that does not fit now pauses the rollout, and app.abort is refused with quota-exceeded' },
  { seed: 4480, found: 'the same quota bypass through a rollback' },
  {
    seed: 4598,
    found: 'a rolling update\'s plan/apply race: a rollout.step retired a slot\'s ready instance for a new one whose exit applied first; a retirement now names its keeper and the state refuses the step when the keeper no longer serves (state version 4). The simulator has run differently since (the cluster version rises in it), so the seed no longer meets the race; src/state/test/machine-rollouts.test.ts pins it',
  },
  { seed: 4957, found: 'the same race in a rollback, the keeper oom-killed before the step applied' },
  {
    seed: 2993,
    found: 'a leader whose clock ran ahead stamped times a later leader saw in the future, and the rollout waited past the liveness bound for its clock to catch up; the scheduler now plans with the newest time in the state carried forward (planning-time.ts), and clocks may run 310 s ahead again. src/sim/test/scenarios.test.ts pins it',
  },
  // Found while building the simulator (the simulator's own bugs, kept so they stay fixed):
  { seed: 10, found: 'the simulated executor never reported stopped for a retired instance an earlier life of its node ran, so the instance held its node\'s memory and a rollback could not place its replacement' },
  {
    seed: 8127,
    found: 'after the heal the operator aborted a paused rollout whose rollback paused again, twelve times in 60 s: its healthchecks had no start period though the runtime takes up to 1.85 s to turn healthy, and OOM kills went on after the heal; the operator now gives a start period past that, deploys a fixed version when a rollback pauses, and no OOM kill starts after the heal',
  },
  { seed: 6, found: 'the operator asked for more than the cluster holds; superseded rollouts kept their instances and no app converged' },
];
