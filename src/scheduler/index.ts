// The scheduler's deterministic logic: constraints, placement, preemption.
export { parseConstraint, parseConstraints, constraintHolds, brokenConstraint } from './constraints.js';
export type { Constraint, ConstraintAttribute, ConstraintError, ParsedConstraint } from './constraints.js';
export { planPlacements, formatReasons } from './placement.js';
export type { PlacementInput, PlacementPlan, PlacementStrategy, Unplaceable, UnplaceableReason } from './placement.js';
export { planPreemption } from './preemption.js';
export type { PreemptionInput, Preemption, Eviction } from './preemption.js';
