/**
 * A service's `deploy:` section (Swarm's keys): replicas, resources,
 * update_config, restart_policy, placement and labels, with Swarm's
 * defaults for what is left out. Pure.
 */
import type { Resources, RestartSpec, UpdateSpec } from '../state/types.js';
import { LIMITS } from '../state/validate.js';
import {
  checkKeys,
  deployKeys,
  limitsKeys,
  placementKeys,
  reservationsKeys,
  resourcesKeys,
  restartPolicyKeys,
  updateConfigKeys,
  type KeyRules,
} from './compose-keys.js';
import type { FileContext } from './context.js';
import { readLabels } from './environment.js';
import type { FieldPath, Problems } from './problems.js';
import { describe, readChoice, readCpuMillis, readDurationMs, readList, readMapping, readMemoryBytes, readWholeNumber } from './read.js';

/** Compose's `update_config` defaults. */
export const UPDATE_DEFAULTS: Readonly<UpdateSpec> = { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 5000 };

/** Compose's `restart_policy` defaults (`window` 0: a restart counts as a success at once). */
export const RESTART_DEFAULTS: Readonly<RestartSpec> = { condition: 'any', delayMs: 5000, windowMs: 0 };

/** What `deploy:` sets; absent fields were not written. */
export interface DeployParts {
  replicas?: number;
  limits: Resources;
  reservations: Resources;
  update: UpdateSpec;
  restart?: RestartSpec;
  constraints: string[];
  maxPerNode?: number;
  labels: Record<string, string>;
  /** `mode: global`: one instance on each node. */
  global?: boolean;
}

export function readDeploy(value: unknown, path: FieldPath, context: FileContext): DeployParts | undefined {
  const { problems } = context;
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  const before = problems.errorCount;
  checkKeys(mapping, path, problems, deployKeys);
  const parts: DeployParts = { limits: {}, reservations: {}, update: { ...UPDATE_DEFAULTS }, constraints: [], labels: {} };
  if (mapping.mode !== undefined && readMode(mapping.mode, [...path, 'mode'], problems) === 'global') parts.global = true;
  if (mapping.replicas !== undefined && mapping.replicas !== null) {
    const replicas = readWholeNumber(mapping.replicas, [...path, 'replicas'], problems, { min: 0, max: LIMITS.replicasMax });
    if (replicas !== undefined) parts.replicas = replicas;
  }
  if (mapping.resources !== undefined && mapping.resources !== null) readResourcesSection(mapping.resources, [...path, 'resources'], problems, parts);
  if (mapping.update_config !== undefined && mapping.update_config !== null) {
    const update = readUpdate(mapping.update_config, [...path, 'update_config'], problems);
    if (update !== undefined) parts.update = update;
  }
  if (mapping.restart_policy !== undefined && mapping.restart_policy !== null) {
    const restart = readRestartPolicy(mapping.restart_policy, [...path, 'restart_policy'], problems);
    if (restart !== undefined) parts.restart = restart;
  }
  if (mapping.placement !== undefined && mapping.placement !== null) readPlacement(mapping.placement, [...path, 'placement'], problems, parts);
  if (mapping.labels !== undefined && mapping.labels !== null) parts.labels = readLabels(mapping.labels, [...path, 'labels'], context) ?? {};
  return problems.errorCount === before ? parts : undefined;
}

function readMode(value: unknown, path: FieldPath, problems: Problems): string | undefined {
  const mode = readChoice(value, path, problems, ['replicated', 'global', 'replicated-job', 'global-job']);
  if (mode === 'replicated-job' || mode === 'global-job') problems.error(path, `"${mode}" is not supported by Hivemind, which runs long-lived apps`);
  return mode;
}

function readResourcesSection(value: unknown, path: FieldPath, problems: Problems, parts: DeployParts): void {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return;
  checkKeys(mapping, path, problems, resourcesKeys);
  if (mapping.limits !== undefined && mapping.limits !== null) parts.limits = readResources(mapping.limits, [...path, 'limits'], problems, limitsKeys) ?? {};
  if (mapping.reservations !== undefined && mapping.reservations !== null) {
    parts.reservations = readResources(mapping.reservations, [...path, 'reservations'], problems, reservationsKeys) ?? {};
  }
}

/** `{ cpus, memory }` as `Resources`; a field left out stays absent. */
export function readResources(value: unknown, path: FieldPath, problems: Problems, rules: KeyRules): Resources | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, rules);
  const resources: Resources = {};
  if (mapping.cpus !== undefined && mapping.cpus !== null) {
    const cpuMillis = readCpuMillis(mapping.cpus, [...path, 'cpus'], problems);
    if (cpuMillis !== undefined) resources.cpuMillis = cpuMillis;
  }
  if (mapping.memory !== undefined && mapping.memory !== null) {
    const memoryBytes = readMemoryBytes(mapping.memory, [...path, 'memory'], problems);
    if (memoryBytes !== undefined) resources.memoryBytes = memoryBytes;
  }
  return resources;
}

function readUpdate(value: unknown, path: FieldPath, problems: Problems): UpdateSpec | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, updateConfigKeys);
  const field = <T>(key: string, fallback: T, reader: (input: unknown, at: FieldPath) => T | undefined): T | undefined =>
    mapping[key] === undefined || mapping[key] === null ? fallback : reader(mapping[key], [...path, key]);
  const parallelism = field('parallelism', UPDATE_DEFAULTS.parallelism, (input, at) =>
    readWholeNumber(input, at, problems, { min: 0, max: LIMITS.replicasMax }),
  );
  const delayMs = field('delay', UPDATE_DEFAULTS.delayMs, (input, at) => readDurationMs(input, at, problems));
  const failureAction = field('failure_action', UPDATE_DEFAULTS.failureAction, (input, at) =>
    readChoice(input, at, problems, ['pause', 'rollback', 'continue']),
  );
  const monitorMs = field('monitor', UPDATE_DEFAULTS.monitorMs, (input, at) => readDurationMs(input, at, problems));
  const order = field('order', UPDATE_DEFAULTS.order, (input, at) => readChoice(input, at, problems, ['stop-first', 'start-first']));
  if (parallelism === undefined || delayMs === undefined || failureAction === undefined || monitorMs === undefined || order === undefined) return undefined;
  return { parallelism, delayMs, failureAction, order, monitorMs };
}

function readRestartPolicy(value: unknown, path: FieldPath, problems: Problems): RestartSpec | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, restartPolicyKeys);
  const before = problems.errorCount;
  const condition = mapping.condition === undefined ? RESTART_DEFAULTS.condition : readChoice(mapping.condition, [...path, 'condition'], problems, ['none', 'on-failure', 'any']);
  const delayMs = mapping.delay === undefined ? RESTART_DEFAULTS.delayMs : readDurationMs(mapping.delay, [...path, 'delay'], problems);
  const windowMs = mapping.window === undefined ? RESTART_DEFAULTS.windowMs : readDurationMs(mapping.window, [...path, 'window'], problems);
  const maxAttempts =
    mapping.max_attempts === undefined || mapping.max_attempts === null
      ? 0
      : readWholeNumber(mapping.max_attempts, [...path, 'max_attempts'], problems, { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (problems.errorCount !== before || condition === undefined || delayMs === undefined || windowMs === undefined || maxAttempts === undefined) return undefined;
  // Swarm reads max_attempts 0 as "no limit", which RestartSpec writes as an absent field.
  return maxAttempts === 0 ? { condition, delayMs, windowMs } : { condition, delayMs, maxAttempts, windowMs };
}

function readPlacement(value: unknown, path: FieldPath, problems: Problems, parts: DeployParts): void {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return;
  checkKeys(mapping, path, problems, placementKeys);
  if (mapping.constraints !== undefined && mapping.constraints !== null) {
    const items = readList(mapping.constraints, [...path, 'constraints'], problems) ?? [];
    for (const [position, item] of items.entries()) {
      const constraint = readConstraint(item, [...path, 'constraints', position], problems);
      if (constraint !== undefined) parts.constraints.push(constraint);
    }
    if (parts.constraints.length > LIMITS.constraintsMax) problems.error([...path, 'constraints'], `has more than ${LIMITS.constraintsMax} constraints`);
  }
  if (mapping.max_replicas_per_node !== undefined && mapping.max_replicas_per_node !== null) {
    const max = readWholeNumber(mapping.max_replicas_per_node, [...path, 'max_replicas_per_node'], problems, { min: 0, max: LIMITS.replicasMax });
    // Swarm reads 0 as "no limit".
    if (max !== undefined && max > 0) parts.maxPerNode = max;
  }
}

const constraintForm = /^\s*([^\s=!]+)\s*(==|!=)\s*(\S(?:.*\S)?)\s*$/;
const constraintAttributes = 'node.id, node.hostname, node.role or node.labels.<key>';

/** A placement constraint, normalized to `attribute op value` with single spaces. */
export function readConstraint(value: unknown, path: FieldPath, problems: Problems): string | undefined {
  const match = typeof value === 'string' ? constraintForm.exec(value) : null;
  if (match === null) {
    problems.error(path, `must be a constraint like "node.labels.zone == a" or "node.hostname != n2", got ${describe(value)}`);
    return undefined;
  }
  const [, attribute = '', operator = '', expected = ''] = match;
  const known = ['node.id', 'node.hostname', 'node.role'].includes(attribute) || /^node\.labels\.\S+$/.test(attribute);
  if (!known) {
    const instead = attribute.startsWith('engine.labels.') ? `node.${attribute.slice('engine.'.length)} (Hivemind's node labels)` : constraintAttributes;
    problems.error(path, `constrains ${JSON.stringify(attribute)}, which Hivemind does not know; use ${instead}`);
    return undefined;
  }
  if (attribute === 'node.role' && !['manager', 'worker', 'voter', 'learner', 'none'].includes(expected)) {
    problems.error(path, `compares node.role with ${JSON.stringify(expected)}; a node's role is manager or worker (Swarm's: a manager is a Raft voter), or voter, learner, none`);
    return undefined;
  }
  return `${attribute} ${operator} ${expected}`;
}

/**
 * The service-level `restart:` of plain Compose: `no`, `always`,
 * `on-failure`, `on-failure:N` or `unless-stopped`, as a restart policy
 * with Swarm's delay and window. Hivemind never stops an app on its own, so
 * `unless-stopped` is `always`.
 */
export function readServiceRestart(value: unknown, path: FieldPath, problems: Problems): RestartSpec | undefined {
  const text = value === false ? 'no' : value;
  const match = typeof text === 'string' ? /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(text) : null;
  if (match === null || (match[2] !== undefined && match[1] !== 'on-failure')) {
    problems.error(path, `must be "no", "always", "on-failure", "on-failure:N" or "unless-stopped", got ${describe(value)}`);
    return undefined;
  }
  const condition = match[1] === 'no' ? 'none' : match[1] === 'on-failure' ? 'on-failure' : 'any';
  const maxAttempts = match[2] === undefined ? 0 : Number(match[2]);
  const restart: RestartSpec = { ...RESTART_DEFAULTS, condition };
  if (Number.isSafeInteger(maxAttempts) && maxAttempts > 0) restart.maxAttempts = maxAttempts;
  return restart;
}
