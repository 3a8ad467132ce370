// The scheduler's deterministic logic: constraints, placement, preemption, rollouts, healing, rebalance, rounds. (The component, with I/O, is component.ts.)
export { parseConstraint, parseConstraints, constraintHolds, brokenConstraint } from './constraints.js';
export type { Constraint, ConstraintAttribute, ConstraintError, ParsedConstraint } from './constraints.js';
export { planPlacements, formatReasons } from './placement.js';
export type { PlacementInput, PlacementPlan, PlacementStrategy, Unplaceable, UnplaceableReason } from './placement.js';
export { planPreemption } from './preemption.js';
export type { PreemptionInput, Preemption, Eviction } from './preemption.js';
export { planRound, SCHEDULER_DEFAULTS } from './round.js';
export type { RoundInput, RoundPlan, SchedulerOptions } from './round.js';
export { planRolloutStep, specOfVersion } from './rollout.js';
export type { RolloutContext } from './rollout.js';
export { planRebalanceStep } from './rebalance.js';
export { mayPlaceNow, backoffMs, planFailedReschedules, planRetiredRemovals, HEALING_DEFAULTS } from './healing.js';
export type { HealingOptions } from './healing.js';
export { isReady, isDone, hasFailed, hasHealthcheck } from './readiness.js';
