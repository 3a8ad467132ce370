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
  // Found while building the simulator (the simulator's own bugs, kept so they stay fixed):
  { seed: 10, found: 'the simulated executor never reported stopped for a retired instance an earlier life of its node ran, so the instance held its node\'s memory and a rollback could not place its replacement' },
  { seed: 6, found: 'the operator asked for more than the cluster holds; superseded rollouts kept their instances and no app converged' },
];
