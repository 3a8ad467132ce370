/**
 * `ports:` in Compose's short syntax (`"8080:80"`, `"80"`, `"8080:80/udp"`,
 * ranges `"9000-9002:9000-9002"`) and long syntax (`{ target, published,
 * protocol, mode, host_ip }`). A port bound to loopback is not published; one
 * bound to another address is published on every address of the node, with
 * a warning (see `withHostAddress`). Pure.
 */
import type { PortSpec } from '../state/types.js';
import { LIMITS } from '../state/validate.js';
import { checkKeys, portKeys } from './compose-keys.js';
import type { FieldPath, Problems } from './problems.js';
import { describe, isMapping, readChoice, readList, readText, readWholeNumber } from './read.js';

const portForms = '"8080:80", "80" or "8080:80/udp"';
const portRange = /^(\d+)(?:-(\d+))?$/;

/** The ports of a service, each target and published port in 1..65535. */
export function readPorts(value: unknown, path: FieldPath, problems: Problems): PortSpec[] | undefined {
  const items = readList(value, path, problems);
  if (items === undefined) return undefined;
  const before = problems.errorCount;
  const ports: PortSpec[] = [];
  for (const [position, item] of items.entries()) {
    const itemPath = [...path, position];
    const read = isMapping(item) ? readLongPort(item, itemPath, problems) : readShortPort(item, itemPath, problems);
    if (read === undefined) continue;
    const published = new Set(ports.filter((port) => port.published !== undefined).map((port) => `${port.published}/${port.protocol}`));
    for (const port of read) {
      const key = `${port.published}/${port.protocol}`;
      if (port.published !== undefined && published.has(key)) problems.error(itemPath, `publishes ${key} a second time; publish each port once`);
      published.add(key);
    }
    ports.push(...read);
  }
  if (ports.length > LIMITS.portsMax) problems.error(path, `has ${ports.length} ports; at most ${LIMITS.portsMax} are allowed`);
  return problems.errorCount === before ? ports : undefined;
}

function readShortPort(item: unknown, path: FieldPath, problems: Problems): PortSpec[] | undefined {
  if (typeof item === 'number') {
    const target = readWholeNumber(item, path, problems, { min: 1, max: 65535 });
    return target === undefined ? undefined : [{ target, protocol: 'tcp' }];
  }
  if (typeof item !== 'string') {
    problems.error(path, `must be a port like ${portForms}, or a mapping with target:, got ${describe(item)}`);
    return undefined;
  }
  const [addresses = '', protocolText, ...extra] = item.trim().split('/');
  const protocol = protocolText === undefined ? 'tcp' : protocolText.toLowerCase();
  if (extra.length > 0 || (protocol !== 'tcp' && protocol !== 'udp')) {
    problems.error(path, `must end in /tcp or /udp when it names a protocol, got ${describe(item)}`);
    return undefined;
  }
  const hostAddress = /^(\[[^\]]*\]|[^:]*):([^:]*):([^:]*)$/.exec(addresses);
  if (hostAddress === null && addresses.startsWith('[')) {
    problems.error(path, `must be a port like ${portForms} or "127.0.0.1:8080:80", got ${describe(item)}`);
    return undefined;
  }
  const portsText = hostAddress === null ? addresses : `${hostAddress[2] ? `${hostAddress[2]}:` : ''}${hostAddress[3]}`;
  const parts = portsText.split(':');
  if (parts.length > 2) {
    problems.error(path, `must be a port like ${portForms}, got ${describe(item)}`);
    return undefined;
  }
  const targets = portNumbers(parts.at(-1) ?? '');
  const published = parts.length === 2 ? portNumbers(parts[0] ?? '') : undefined;
  if (targets === undefined || (parts.length === 2 && published === undefined)) {
    problems.error(path, `must be a port like ${portForms}, with ports from 1 to 65535, got ${describe(item)}`);
    return undefined;
  }
  if (published !== undefined && published.length !== targets.length) {
    problems.error(path, `maps ${published.length} published ports to ${targets.length} target ports; give ranges of the same length`);
    return undefined;
  }
  const mapped = targets.map((target, index): PortSpec => {
    const publishedPort = published?.[index];
    return publishedPort === undefined ? { target, protocol } : { target, published: publishedPort, protocol };
  });
  return hostAddress === null ? mapped : withHostAddress(mapped, hostAddress[1] ?? '', path, problems);
}

/**
 * A port bound to one host address. All addresses (`0.0.0.0`, `::`) is
 * what Hivemind does. Loopback is not published at all (the intent is "not
 * from outside"; other apps and the proxy still reach the port); any other
 * address is published on every address of the node. Both say so.
 */
function withHostAddress(ports: PortSpec[], host: string, path: FieldPath, problems: Problems): PortSpec[] {
  const address = host.replace(/^\[(.*)\]$/, '$1');
  if (address === '' || address === '0.0.0.0' || address === '::') return ports;
  if (/^127\./.test(address) || address === '::1' || address === 'localhost') {
    problems.warn(path, `binds ${address}: Hivemind does not publish it on the node (other apps of the tenant and the proxy still reach port ${ports.map((port) => port.target).join(', ')}; hivemind ps shows each instance's address)`);
    return ports.map(({ target, protocol }) => ({ target, protocol }));
  }
  problems.warn(path, `binds ${address}: Hivemind publishes the port on every address of the node, not only this one; keep it closed at the firewall if it must not be reached there`);
  return ports;
}

/** The ports of `80` or `9000-9002`; `undefined` when not that form, out of range, or a range longer than allowed. */
function portNumbers(text: string): number[] | undefined {
  const match = portRange.exec(text);
  if (match === null) return undefined;
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  if (first < 1 || last > 65535 || last < first || last - first >= LIMITS.portsMax) return undefined;
  return Array.from({ length: last - first + 1 }, (_, index) => first + index);
}

function readLongPort(item: Record<string, unknown>, path: FieldPath, problems: Problems): PortSpec[] | undefined {
  const before = problems.errorCount;
  checkKeys(item, path, problems, portKeys);
  let target: number | undefined;
  if (item.target === undefined || item.target === null) problems.error([...path, 'target'], 'is required: the port inside the instance');
  else target = readWholeNumber(item.target, [...path, 'target'], problems, { min: 1, max: 65535 });
  const published =
    item.published === undefined || item.published === null ? undefined : readWholeNumber(item.published, [...path, 'published'], problems, { min: 1, max: 65535 });
  const protocol = item.protocol === undefined ? 'tcp' : readChoice(item.protocol, [...path, 'protocol'], problems, ['tcp', 'udp']);
  const host = item.host_ip === undefined || item.host_ip === null ? undefined : readText(item.host_ip, [...path, 'host_ip'], problems, { nonEmpty: true, noSpaces: true, what: 'an IP address' });
  if (item.mode !== undefined) {
    const mode = readChoice(item.mode, [...path, 'mode'], problems, ['ingress', 'host']);
    if (mode === 'host') problems.warn([...path, 'mode'], 'is ignored: Hivemind publishes every port the same way');
  }
  if (problems.errorCount !== before || target === undefined || protocol === undefined) return undefined;
  const port: PortSpec = published === undefined ? { target, protocol } : { target, published, protocol };
  return host === undefined || published === undefined ? [port] : withHostAddress([port], host, [...path, 'host_ip'], problems);
}
