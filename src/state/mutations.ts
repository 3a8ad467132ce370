/**
 * Mutation switches for the whole-cluster simulator's mutation checks
 * (src/sim/mutations.ts): each turns one safety check of the state machine
 * off, so that a test can show the simulator's invariants catch its absence.
 * Test only: nothing in production sets them, and every switch is off unless
 * a test turns it on (and back off when it ends).
 */
export interface StateMutations {
  /** `quotaProblem` finds no problem: deploys and scales may take a tenant past its quota. */
  quotaCheckOff: boolean;
  /** `instance.place` may move an instance off a node that is up (place it twice). */
  placementConflictCheckOff: boolean;
  /** Readiness (readiness.ts) ignores healthchecks: an instance counts as ready once it runs, healthy or not (the rollouts' health gate is gone, in the scheduler's plans and in the state's check of a step's keepers alike). */
  healthGateOff: boolean;
}

/** The switches, all off. See the file comment. */
export const stateMutations: StateMutations = {
  quotaCheckOff: false,
  placementConflictCheckOff: false,
  healthGateOff: false,
};
