/**
 * Parsers for the values people type on the command line. Each returns the
 * value in Hivemind's unit or throws `InvalidArgumentError`, which commander
 * reports as a usage error naming the flag. Pure.
 */
import { InvalidArgumentError } from 'commander';
import { parseCpuMillis, parseDurationMs, parseMemoryBytes } from '../appfile/units.js';
import { NAME_PATTERN } from '../state/types.js';
import { UsageError } from './errors.js';

/** The API port a bare host is given (docs/design.md, Defaults). */
export const API_PORT_DEFAULT = 7070;

/** Where the CLI looks for a node when neither `--addr` nor `HIVEMIND_ADDR` is set. */
export const ADDRESS_DEFAULT = `https://127.0.0.1:${API_PORT_DEFAULT}`;

/**
 * Makes a base URL of what people write for a node: `https://host:port`,
 * `http://host` (a node run with --insecure-api), `host:port`, `host`,
 * `[::1]:7070`. Without a scheme it is https; a missing port is 7070; any
 * path is dropped. Throws `UsageError` when it is not an address.
 */
export function normalizeAddress(text: string): string {
  const trimmed = text.trim();
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed);
  const withScheme = hasScheme ? trimmed : `https://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`--addr: ${JSON.stringify(text)} is not an address; write host:port or https://host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--addr: ${JSON.stringify(text)} must be http:// or https://`);
  }
  if (url.hostname === '') throw new UsageError(`--addr: ${JSON.stringify(text)} has no host`);
  // A written URL keeps its scheme's port; a bare host gets the API's.
  const port = url.port !== '' ? `:${url.port}` : hasScheme ? '' : `:${API_PORT_DEFAULT}`;
  return `${url.protocol}//${url.hostname}${port}`;
}

/** `--memory 4G`: a size in bytes (binary units, as Docker reads them). */
export function parseSizeOption(text: string): number {
  const bytes = parseMemoryBytes(text);
  if (bytes === undefined || bytes <= 0) throw new InvalidArgumentError('must be a size such as 512M, 10G or 1.5GiB');
  return bytes;
}

/** `--cpu 2`: a count of cores, as thousandths. */
export function parseCpuOption(text: string): number {
  const millis = parseCpuMillis(text);
  if (millis === undefined || millis <= 0) throw new InvalidArgumentError('must be a number of cores such as 0.5 or 2');
  return millis;
}

/** A whole number `>= minimum` (`--limit`, `--instances`, a replica count). */
export function wholeNumber(minimum: number): (text: string) => number {
  return (text: string) => {
    const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < minimum) throw new InvalidArgumentError(`must be a whole number >= ${minimum}`);
    return value;
  };
}

/** `--timeout 5m`: a duration in milliseconds. */
export function parseDurationOption(text: string): number {
  const durationMs = parseDurationMs(text.trim());
  if (durationMs === undefined || durationMs <= 0) throw new InvalidArgumentError('must be a duration such as 30s, 5m or 1h');
  return durationMs;
}

/** What `orUnlimited` gives for `unlimited` (commander turns a parsed `null` into `''`, so not null). */
export const UNLIMITED = 'unlimited';

/** A quota limit that may also be lifted: `unlimited` (or `none`) gives `UNLIMITED`. */
export function orUnlimited<T>(parse: (text: string) => T): (text: string) => T | typeof UNLIMITED {
  return (text: string) => (/^(unlimited|none)$/i.test(text.trim()) ? UNLIMITED : parse(text));
}

/**
 * `web` or `acme/web`: an entity of a tenant. The tenant comes from the
 * name's prefix, else from `--tenant`, else `default`.
 */
export function tenantAndName(text: string, tenantOption: string | undefined, what: string): { tenant: string; name: string } {
  const slash = text.indexOf('/');
  const tenant = slash === -1 ? (tenantOption ?? 'default') : text.slice(0, slash);
  const name = slash === -1 ? text : text.slice(slash + 1);
  if (slash !== -1 && tenantOption !== undefined && tenantOption !== tenant) {
    throw new UsageError(`${what} ${JSON.stringify(text)} names tenant "${tenant}" but --tenant is "${tenantOption}"; give one of them`);
  }
  if (!NAME_PATTERN.test(tenant)) throw new UsageError(`tenant ${JSON.stringify(tenant)} is not a valid name (lowercase letters, digits and -, at most 63)`);
  if (!NAME_PATTERN.test(name)) throw new UsageError(`${what} ${JSON.stringify(name)} is not a valid name (lowercase letters, digits and -, at most 63)`);
  return { tenant, name };
}
