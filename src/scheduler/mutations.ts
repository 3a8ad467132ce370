/**
 * Mutation switches for the whole-cluster simulator's mutation checks
 * (src/sim, docs/internals/simulator.md): each turns one safety check of the
 * scheduler off, so that a test can show the simulator's invariants catch
 * its absence. Test only: nothing in production sets them, and every switch
 * is off unless a test turns it on (and back off when it ends).
 */
export interface SchedulerMutations {
  /** Placement plans instances already placed on an up node, or whose placement is in flight, as if they were not (it may place them twice). */
  placementConflictCheckOff: boolean;
}

/** The switches, all off. See the file comment. */
export const schedulerMutations: SchedulerMutations = {
  placementConflictCheckOff: false,
};
