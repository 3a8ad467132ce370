/**
 * The components every agent runs beside Raft, in start order (stopped in
 * reverse). See `services.ts` for what they get.
 */
import type { ComponentFactory } from './services.js';

export const COMPONENT_FACTORIES: readonly ComponentFactory[] = [];
