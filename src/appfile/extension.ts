/**
 * Hivemind's own keys, under `x-hivemind`: at the top level `{ tenant }`,
 * in a service `{ tenant, canary, strategy, priority, policies, secrets,
 * max_per_node }`. Compose ignores `x-*` keys, so the same file still runs
 * under `docker compose`. Pure.
 */
import type { HivemindSpec } from '../state/types.js';
import { LIMITS } from '../state/validate.js';
import { canaryKeys, checkKeys, fileExtensionKeys, serviceExtensionKeys } from './compose-keys.js';
import type { FieldPath, Problems } from './problems.js';
import { checkName, describe, readChoice, readMapping, readNameList, readText, readWholeNumber } from './read.js';

/** The top-level `x-hivemind`: the tenant of every service that does not name its own. */
export function readFileExtension(value: unknown, path: FieldPath, problems: Problems): { tenant?: string } {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return {};
  checkKeys(mapping, path, problems, fileExtensionKeys);
  const tenant = readTenant(mapping.tenant, [...path, 'tenant'], problems);
  return tenant === undefined ? {} : { tenant };
}

/** A service's `x-hivemind`. */
export function readServiceExtension(value: unknown, path: FieldPath, problems: Problems): { tenant?: string; hivemind: HivemindSpec } | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  const before = problems.errorCount;
  checkKeys(mapping, path, problems, serviceExtensionKeys);
  const hivemind: HivemindSpec = {};
  const at = (key: string): FieldPath => [...path, key];
  const given = (key: string): boolean => mapping[key] !== undefined && mapping[key] !== null;
  if (given('canary')) {
    const canary = readCanary(mapping.canary, at('canary'), problems);
    if (canary !== undefined) hivemind.canary = canary;
  }
  if (given('strategy')) {
    const strategy = readChoice(mapping.strategy, at('strategy'), problems, ['rolling', 'blue-green', 'canary']);
    if (strategy !== undefined) hivemind.strategy = strategy;
    if (strategy !== undefined && strategy !== 'canary' && hivemind.canary !== undefined) {
      problems.error(at('canary'), `applies only to strategy "canary", but strategy is "${strategy}"; remove one of them`);
    }
  }
  if (given('priority')) {
    const priority = readWholeNumber(mapping.priority, at('priority'), problems, { min: -1_000_000, max: 1_000_000 });
    if (priority !== undefined) hivemind.priority = priority;
  }
  if (given('policies')) {
    const policies = readNameList(mapping.policies, at('policies'), problems, 'policy');
    if (policies !== undefined) hivemind.policies = policies;
  }
  if (given('secrets')) {
    const secrets = readNameList(mapping.secrets, at('secrets'), problems, 'secret');
    if (secrets !== undefined) hivemind.secrets = secrets;
  }
  if (given('max_per_node')) {
    const maxPerNode = readWholeNumber(mapping.max_per_node, at('max_per_node'), problems, { min: 1, max: LIMITS.replicasMax });
    if (maxPerNode !== undefined) hivemind.maxPerNode = maxPerNode;
  }
  const tenant = readTenant(mapping.tenant, at('tenant'), problems);
  if (problems.errorCount !== before) return undefined;
  return tenant === undefined ? { hivemind } : { tenant, hivemind };
}

function readTenant(value: unknown, path: FieldPath, problems: Problems): string | undefined {
  if (value === undefined || value === null) return undefined;
  const tenant = readText(value, path, problems, { what: 'a tenant name' });
  return tenant !== undefined && checkName(tenant, path, problems, 'tenant') ? tenant : undefined;
}

/** `canary: { instances: 1 }` or `{ weight: 10 }` (a percent; `"10%"` is accepted too), or both. */
function readCanary(value: unknown, path: FieldPath, problems: Problems): HivemindSpec['canary'] | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, canaryKeys);
  const canary: NonNullable<HivemindSpec['canary']> = {};
  if (mapping.instances !== undefined) {
    const instances = readWholeNumber(mapping.instances, [...path, 'instances'], problems, { min: 1, max: LIMITS.replicasMax });
    if (instances !== undefined) canary.instances = instances;
  }
  if (mapping.weight !== undefined) {
    const weight = typeof mapping.weight === 'string' ? mapping.weight.replace(/%$/, '') : mapping.weight;
    const weightPath = [...path, 'weight'];
    if (typeof weight === 'number' || (typeof weight === 'string' && /^\d+$/.test(weight))) {
      const percent = readWholeNumber(weight, weightPath, problems, { min: 1, max: 100 });
      if (percent !== undefined) canary.weightPercent = percent;
    } else {
      problems.error(weightPath, `must be a percent from 1 to 100, like 10 or "10%", got ${describe(mapping.weight)}`);
    }
  }
  if (mapping.instances === undefined && mapping.weight === undefined) {
    problems.error(path, 'must set instances (how many new instances run beside the old) or weight (the percent of traffic they get)');
  }
  return canary;
}
