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
import { containerdRuntimeFactory, containerdSettingsFrom } from '../executor/containerd/runtime-factory.js';

/** The executor with the containerd runtime (image apps) beside the process runtime; containerd's settings come from the agent's environment. */
const createExecutorWithContainerd: ComponentFactory = (services) => createExecutor(services, { runtimeFactories: [containerdRuntimeFactory(containerdSettingsFrom(process.env))] });

export const COMPONENT_FACTORIES: readonly ComponentFactory[] = [createGossipComponent, schedulerComponent, createNetworkComponent, createExecutorWithContainerd, createDnsComponent, createProxyComponent];
