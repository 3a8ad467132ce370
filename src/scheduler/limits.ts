/**
 * Whether nodes can enforce an app's CPU and memory limits: each node says
 * which it can (LIMITS_LABEL, from its cgroup controllers), and an app whose
 * limit no node can enforce is refused at deploy, naming the field; a node
 * that cannot enforce it never gets the app's instances. Nothing is
 * accepted and then ignored. Pure: no Node API.
 */
import { LIMITS_LABEL, type AppSpec, type NodeRecord } from '../state/types.js';

/** A limit a node may or may not enforce, by its cgroup controller's name. */
export type LimitController = 'cpu' | 'memory';

/** The controllers `spec`'s limits need, memory first. */
export function limitControllers(spec: Pick<AppSpec, 'limits'>): LimitController[] {
  const needed: LimitController[] = [];
  if (spec.limits.memoryBytes !== undefined) needed.push('memory');
  if (spec.limits.cpuMillis !== undefined) needed.push('cpu');
  return needed;
}

/** Whether `node` says it enforces `controller`: true, false, or undefined when it does not say (an older node). */
export function nodeEnforces(node: Pick<NodeRecord, 'labels'>, controller: LimitController): boolean | undefined {
  const text = node.labels[LIMITS_LABEL];
  if (text === undefined) return undefined;
  return text.split(',').includes(controller);
}

/** The first of `needed` that `node` says it cannot enforce, if any. */
export function unenforcedOn(node: Pick<NodeRecord, 'labels'>, needed: readonly LimitController[]): LimitController | undefined {
  return needed.find((controller) => nodeEnforces(node, controller) === false);
}

/** The field of an app spec that asks for `controller`'s limit. */
export function limitField(controller: LimitController): 'limits.memoryBytes' | 'limits.cpuMillis' {
  return controller === 'memory' ? 'limits.memoryBytes' : 'limits.cpuMillis';
}

/**
 * The first limit of `spec` that no node of `nodes` (those that have not
 * left) can enforce, when every such node says what it enforces; undefined
 * when some node can, or may (it does not say), or there is no node yet.
 */
export function unenforceableLimit(spec: Pick<AppSpec, 'limits'>, nodes: Iterable<Pick<NodeRecord, 'labels' | 'status'>>): LimitController | undefined {
  const needed = limitControllers(spec);
  if (needed.length === 0) return undefined;
  const members = [...nodes].filter((node) => node.status !== 'left');
  if (members.length === 0) return undefined;
  return needed.find((controller) => members.every((node) => nodeEnforces(node, controller) === false));
}
