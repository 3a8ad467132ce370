/**
 * The mutation checks' switches, by name: each removes one safety check of
 * the real code (test only; see scheduler/mutations.ts and state/quota.ts),
 * and the simulator must catch its absence within the seeds the test runs.
 */
import { schedulerMutations } from '../scheduler/mutations.js';
import { stateMutations } from '../state/mutations.js';

/** Each mutation, with the check that should catch it (the start of its violation). */
export const MUTATIONS = {
  /** The state machine's quota check on deploys and scales. */
  'no-quota-check': { caughtBy: 'quota:', set: (on: boolean) => void (stateMutations.quotaCheckOff = on) },
  /** The rollouts' health gate: an instance counts as ready once it runs, healthy or not. */
  'no-health-gate': { caughtBy: 'rolling update:', set: (on: boolean) => void (stateMutations.healthGateOff = on) },
  /**
   * The checks against placing an instance already placed: the planner's
   * (placed on an up node, or in flight) and the state machine's (no move off
   * an up node). Both go: either alone stops the other's absence from
   * placing twice.
   */
  'no-placement-conflict-check': {
    caughtBy: 'placement:',
    set: (on: boolean) => {
      schedulerMutations.placementConflictCheckOff = on;
      stateMutations.placementConflictCheckOff = on;
    },
  },
} as const;

export type MutationName = keyof typeof MUTATIONS;

/** Whether `name` is a mutation's name. */
export function isMutationName(name: string): name is MutationName {
  return Object.hasOwn(MUTATIONS, name);
}

/** Runs `body` with mutation `name` on, and turns it off again however `body` ends. */
export async function withMutation<T>(name: MutationName, body: () => Promise<T>): Promise<T> {
  MUTATIONS[name].set(true);
  try {
    return await body();
  } finally {
    MUTATIONS[name].set(false);
  }
}
