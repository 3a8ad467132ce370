/**
 * Several app files as one, the way `docker compose -f a.yml -f b.yml`
 * merges them: mappings merge key by key, a later file's scalar wins;
 * `command`, `entrypoint` and `healthcheck.test` are replaced whole;
 * `environment`, `labels` (and `deploy.labels`) merge by variable, whatever
 * form each file writes them in; `volumes` merge by target, `secrets` and
 * `configs` by source, `ports` and other lists append what is new. Then
 * `--set service.key=value` overrides. Pure: works on the data of the YAML.
 */
import { parse as parseYamlValue } from 'yaml';
import type { FieldPath, Problems } from './problems.js';
import { isMapping, setOwn } from './read.js';

/** Lists that a later file replaces rather than extends. */
const replacedLists = new Set(['command', 'entrypoint', 'test', 'dns', 'dns_search', 'env_file']);
/** Key-value sections that merge by key (a list of KEY=VALUE reads as a mapping). */
const keyValueSections = new Set(['environment', 'labels', 'args', 'sysctls', 'extra_hosts']);

/** `override` merged over `base` (neither is changed); `path` is where they sit in the file. */
export function mergeTrees(base: unknown, override: unknown, path: FieldPath = []): unknown {
  if (override === undefined) return base;
  const key = path.at(-1);
  const inService = path[0] === 'services' && path.length >= 3;
  if (inService && typeof key === 'string' && keyValueSections.has(key) && isKeyValues(base) && isKeyValues(override)) {
    return { ...asMapping(base), ...asMapping(override) };
  }
  if (isMapping(base) && isMapping(override)) {
    const merged: Record<string, unknown> = { ...base };
    for (const [name, value] of Object.entries(override)) setOwn(merged, name, mergeTrees(own(base, name), value, [...path, name]));
    return merged;
  }
  if (Array.isArray(base) && Array.isArray(override) && !(typeof key === 'string' && replacedLists.has(key))) {
    if (inService && (key === 'volumes' || key === 'secrets' || key === 'configs')) return mergeByIdentity(base, override, key === 'volumes' ? mountTarget : source);
    const seen = new Set(base.map((item) => JSON.stringify(item)));
    return [...base, ...override.filter((item) => !seen.has(JSON.stringify(item)))];
  }
  return override;
}

/** `record[key]` when it is the record's own (never a prototype's, for keys such as `__proto__`). */
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function isKeyValues(value: unknown): boolean {
  return isMapping(value) || Array.isArray(value);
}

/** `["A=1", "B"]` → `{ A: "1", B: null }`; a mapping as it is. */
function asMapping(value: unknown): Record<string, unknown> {
  if (isMapping(value)) return value;
  const mapping: Record<string, unknown> = {};
  for (const item of value as unknown[]) {
    const text = String(item);
    const equals = text.indexOf('=');
    setOwn(mapping, equals === -1 ? text : text.slice(0, equals), equals === -1 ? null : text.slice(equals + 1));
  }
  return mapping;
}

function mergeByIdentity(base: unknown[], override: unknown[], identity: (item: unknown) => string): unknown[] {
  const merged = [...base];
  for (const item of override) {
    const position = merged.findIndex((existing) => identity(existing) === identity(item));
    if (position === -1) merged.push(item);
    else merged[position] = item;
  }
  return merged;
}

/** A mount's target: the long syntax's `target`, the short syntax's second part. */
function mountTarget(item: unknown): string {
  if (isMapping(item)) return String(item.target);
  const parts = String(item).split(':');
  return parts.length === 1 ? String(item) : String(parts[1]);
}

function source(item: unknown): string {
  return isMapping(item) ? String(item.source) : String(item);
}

/**
 * Applies `--set` overrides (`web.image=nginx:1.27`,
 * `web.deploy.replicas=3`, `web.environment.MODE=debug`) to the services of
 * `root`, in order. The value reads as YAML (`3` is a number, `[a, b]` a
 * list). An override of a service the files do not have is an error, as is
 * one that runs through a value that is not a mapping.
 */
export function applySets(root: unknown, sets: readonly string[], problems: Problems): unknown {
  if (sets.length === 0 || !isMapping(root)) return root;
  const copy = structuredClone(root);
  for (const [position, set] of sets.entries()) {
    const where: FieldPath = [`--set[${position}]`];
    const match = /^([^=.\s]+)((?:\.[^=.\s]+)+)=(.*)$/s.exec(set);
    if (match === null) {
      problems.error(where, `must be SERVICE.KEY=VALUE, like "web.image=nginx:1.27" or "web.deploy.replicas=3", got ${JSON.stringify(set)}`);
      continue;
    }
    const [, service = '', keyText = '', valueText = ''] = match;
    const services = copy.services;
    if (!isMapping(services) || !isMapping(own(services, service))) {
      problems.error(where, `sets a key of service "${service}", which the app file does not have`);
      continue;
    }
    let value: unknown;
    try {
      value = valueText === '' ? '' : parseYamlValue(valueText);
    } catch {
      value = valueText;
    }
    const keys = keyText.slice(1).split('.');
    let target = services[service] as Record<string, unknown>;
    let failed = false;
    for (const [depth, key] of keys.slice(0, -1).entries()) {
      const next = own(target, key);
      if (next === undefined || next === null) setOwn(target, key, {});
      // `environment: [A=1]` takes `--set web.environment.B=2` as its mapping form would.
      else if (Array.isArray(next) && keyValueSections.has(key)) setOwn(target, key, asMapping(next));
      else if (!isMapping(next)) {
        problems.error(where, `cannot set ${service}.${keys.slice(0, depth + 2).join('.')}: services.${service}.${keys.slice(0, depth + 1).join('.')} is not a mapping`);
        failed = true;
        break;
      }
      target = target[key] as Record<string, unknown>;
    }
    if (!failed) setOwn(target, keys.at(-1)!, value);
  }
  return copy;
}
