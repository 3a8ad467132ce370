/**
 * The components every agent runs beside Raft, in start order (stopped in
 * reverse). See `services.ts` for what they get.
 */
import type { ComponentFactory } from '../node/services.js';
import { createGossipComponent } from '../membership/component.js';
import { schedulerComponent } from '../scheduler/component.js';
import { createExecutor } from '../executor/executor.js';
import { createNetworkComponent } from '../network/component.js';
import { createDnsComponent } from '../dns/component.js';
import { createProxyComponent } from '../proxy/component.js';
// Registers the containerd runtime with the executor (image apps).
import '../executor/containerd/register.js';

export const COMPONENT_FACTORIES: readonly ComponentFactory[] = [createGossipComponent, schedulerComponent, createNetworkComponent, createExecutor, createDnsComponent, createProxyComponent];
