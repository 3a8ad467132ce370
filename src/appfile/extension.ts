/**
 * Hivemind's own keys, under `x-hivemind`: at the top level `{ tenant }`,
 * in a service `{ tenant, canary, strategy, priority, policies, secrets,
 * max_per_node, routes, proxy }`. Compose ignores `x-*` keys, so the same file still runs
 * under `docker compose`. Pure.
 */
import type { HivemindSpec, ProxySpec, RouteSpec } from '../state/types.js';
import { HOST_PATTERN, LIMITS } from '../state/validate.js';
import { breakerKeys, canaryKeys, checkKeys, fileExtensionKeys, outlierKeys, proxyKeys, routeKeys, serviceExtensionKeys } from './compose-keys.js';
import type { FieldPath, Problems } from './problems.js';
import { checkName, describe, isMapping, readChoice, readDurationMs, readList, readMapping, readNameList, readText, readWholeNumber } from './read.js';

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
  if (given('routes')) {
    const routes = readRoutes(mapping.routes, at('routes'), problems);
    if (routes !== undefined) hivemind.routes = routes;
  }
  if (given('proxy')) {
    const proxy = readProxy(mapping.proxy, at('proxy'), problems);
    if (proxy !== undefined) hivemind.proxy = proxy;
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

/** `routes: ["shop.example.com", { host: api.example.com, path: /v1 }]`: host names (any letter case, no port) and path prefixes. */
function readRoutes(value: unknown, path: FieldPath, problems: Problems): RouteSpec[] | undefined {
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  if (items.length > LIMITS.routesMax) {
    problems.error(path, `must list at most ${LIMITS.routesMax} routes, got ${items.length}`);
    return undefined;
  }
  const routes: RouteSpec[] = [];
  for (const [position, item] of items.entries()) {
    const at: FieldPath = [...path, position];
    const mapping = isMapping(item) ? item : undefined;
    if (mapping !== undefined) checkKeys(mapping, at, problems, routeKeys);
    const hostText = readText(mapping === undefined ? item : mapping.host, mapping === undefined ? at : [...at, 'host'], problems, { what: 'a host name' });
    if (hostText === undefined) continue;
    const host = hostText.toLowerCase();
    if (!HOST_PATTERN.test(host)) {
      problems.error(mapping === undefined ? at : [...at, 'host'], `must be a host name like "shop.example.com" (no port, no scheme), got ${describe(hostText)}`);
      continue;
    }
    const route: RouteSpec = { host };
    if (mapping?.path !== undefined && mapping.path !== null) {
      const prefix = readText(mapping.path, [...at, 'path'], problems, { what: 'a path prefix' });
      if (prefix !== undefined && !/^\/\S*$/.test(prefix)) problems.error([...at, 'path'], `must start with / and have no spaces, got ${describe(prefix)}`);
      else if (prefix !== undefined && prefix !== '/') route.path = prefix.replace(/\/+$/, '');
    }
    routes.push(route);
  }
  return routes;
}

/**
 * `proxy: { balance, hash_on, ab, timeout, connect_timeout, retries, retry_budget,
 * breaker: { failures, open }, outlier: { failures, ejection }, max_concurrent }`.
 * `ab` (the A/B rule): `header:NAME`, `header:NAME=VALUE`, `cookie:NAME` or
 * `cookie:NAME=VALUE`.
 */
function readProxy(value: unknown, path: FieldPath, problems: Problems): ProxySpec | undefined {
  const mapping = readMapping(value, path, problems);
  if (mapping === undefined) return undefined;
  checkKeys(mapping, path, problems, proxyKeys);
  const proxy: ProxySpec = {};
  const at = (key: string): FieldPath => [...path, key];
  const set = <K extends keyof ProxySpec>(key: K, read: ProxySpec[K] | undefined): void => {
    if (read !== undefined) proxy[key] = read;
  };
  if (mapping.balance !== undefined) set('balance', readChoice(mapping.balance, at('balance'), problems, ['round-robin', 'least-request', 'weighted', 'hash']));
  if (mapping.hash_on !== undefined) {
    const text = readText(mapping.hash_on, at('hash_on'), problems, { what: 'header:NAME or cookie:NAME' });
    const match = text === undefined ? null : /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(text.trim());
    if (text !== undefined && match === null) problems.error(at('hash_on'), `must be header:NAME or cookie:NAME, like "header:x-user" or "cookie:session", got ${describe(text)}`);
    else if (match !== null && match[1] === 'header') proxy.hashHeader = match[2]!.toLowerCase();
    else if (match !== null) proxy.hashCookie = match[2]!;
  }
  if (mapping.ab !== undefined) {
    const text = readText(mapping.ab, at('ab'), problems, { what: 'header:NAME[=VALUE] or cookie:NAME[=VALUE]' });
    const match = text === undefined ? null : /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:=([\x21-\x7e]+))?$/.exec(text.trim());
    if (text !== undefined && match === null) problems.error(at('ab'), `must be header:NAME, header:NAME=VALUE, cookie:NAME or cookie:NAME=VALUE, like "header:x-beta" or "cookie:group=b", got ${describe(text)}`);
    else if (match !== null) {
      if (match[1] === 'header') proxy.abHeader = match[2]!.toLowerCase();
      else proxy.abCookie = match[2]!;
      if (match[3] !== undefined) proxy.abValue = match[3];
    }
  }
  if (proxy.balance === 'hash' && mapping.hash_on === undefined) problems.error(at('hash_on'), 'must be set when balance is "hash" (header:NAME or cookie:NAME)');
  if (mapping.hash_on !== undefined && proxy.balance !== undefined && proxy.balance !== 'hash') problems.error(at('hash_on'), `applies only to balance "hash", but balance is "${proxy.balance}"`);
  if (mapping.timeout !== undefined) set('timeoutMs', positive(readDurationMs(mapping.timeout, at('timeout'), problems), at('timeout'), problems));
  if (mapping.connect_timeout !== undefined) set('connectTimeoutMs', positive(readDurationMs(mapping.connect_timeout, at('connect_timeout'), problems), at('connect_timeout'), problems));
  if (mapping.retries !== undefined) set('retries', readWholeNumber(mapping.retries, at('retries'), problems, { min: 0, max: 10 }));
  if (mapping.retry_budget !== undefined) {
    const budget = typeof mapping.retry_budget === 'string' ? mapping.retry_budget.replace(/%$/, '') : mapping.retry_budget;
    set('retryBudgetPercent', readWholeNumber(budget, at('retry_budget'), problems, { min: 0, max: 100 }));
  }
  if (mapping.breaker !== undefined) {
    const breaker = readMapping(mapping.breaker, at('breaker'), problems);
    if (breaker !== undefined) {
      checkKeys(breaker, at('breaker'), problems, breakerKeys);
      if (breaker.failures !== undefined) set('breakerFailures', readWholeNumber(breaker.failures, [...at('breaker'), 'failures'], problems, { min: 1, max: 1000 }));
      if (breaker.open !== undefined) set('breakerOpenMs', positive(readDurationMs(breaker.open, [...at('breaker'), 'open'], problems), [...at('breaker'), 'open'], problems));
    }
  }
  if (mapping.outlier !== undefined) {
    const outlier = readMapping(mapping.outlier, at('outlier'), problems);
    if (outlier !== undefined) {
      checkKeys(outlier, at('outlier'), problems, outlierKeys);
      if (outlier.failures !== undefined) set('outlierFailures', readWholeNumber(outlier.failures, [...at('outlier'), 'failures'], problems, { min: 1, max: 1000 }));
      if (outlier.ejection !== undefined) set('outlierEjectionMs', positive(readDurationMs(outlier.ejection, [...at('outlier'), 'ejection'], problems), [...at('outlier'), 'ejection'], problems));
    }
  }
  if (mapping.max_concurrent !== undefined) set('maxConcurrent', readWholeNumber(mapping.max_concurrent, at('max_concurrent'), problems, { min: 1, max: 1_000_000 }));
  return proxy;
}

function positive(durationMs: number | undefined, path: FieldPath, problems: Problems): number | undefined {
  if (durationMs === 0) problems.error(path, 'must be longer than 0');
  return durationMs === 0 ? undefined : durationMs;
}
