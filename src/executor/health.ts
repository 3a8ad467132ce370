/**
 * Running one health-check probe: exec through the runtime (in the
 * workload's context), HTTP with undici (loaded by the first HTTP probe, not
 * at start), or a TCP connect. Each resolves
 * with undefined for a pass or a short description of the failure; none
 * throws. The state machine that interprets the results is in
 * `health-state.ts`.
 *
 * `127.0.0.1`/`localhost` in an HTTP or TCP target means the workload
 * itself: it is replaced by the workload's address when the runtime gives
 * one (a container's address on its bridge).
 */
import { connect } from 'node:net';
import type { HealthcheckSpec } from '../state/types.js';
import { probeKind } from './health-state.js';
import type { Runtime } from './runtime.js';

/** What a probe needs of its workload. */
export interface ProbeTarget {
  id: string;
  runtime: Runtime;
  /** Where the workload's ports are reachable from the node. */
  address?: string;
  /** Host port of each target port, where they differ (process apps). */
  hostPorts?: Record<string, number>;
}

/** Runs the check once. undefined: it passed. */
export async function runProbe(spec: HealthcheckSpec, target: ProbeTarget, signal?: AbortSignal): Promise<string | undefined> {
  const kind = probeKind(spec.test);
  switch (kind.type) {
    case 'none':
      return undefined;
    case 'exec':
      return execProbe(kind.argv, spec.timeoutMs, target, signal);
    case 'http':
      return httpProbe(withHostPort(withAddress(kind.url, target.address), target.hostPorts), spec.timeoutMs, signal);
    case 'tcp':
      return tcpProbe(localHost(kind.host) && target.address ? target.address : kind.host, (localHost(kind.host) ? target.hostPorts?.[String(kind.port)] : undefined) ?? kind.port, spec.timeoutMs);
  }
}

async function execProbe(argv: string[], timeoutMs: number, target: ProbeTarget, signal?: AbortSignal): Promise<string | undefined> {
  if (target.runtime.exec === undefined) return `the ${target.runtime.kind} runtime cannot run exec health checks`;
  try {
    const result = await target.runtime.exec(target.id, argv, { timeoutMs, ...(signal ? { signal } : {}) });
    if (result.timedOut) return `the check did not finish within ${timeoutMs} ms`;
    if (result.exitCode === 0) return undefined;
    const output = result.output.trim().split('\n').slice(-3).join(' | ').slice(0, 200);
    return `the check exited with code ${result.exitCode}${output ? `: ${output}` : ''}`;
  } catch (error) {
    return `the check could not run: ${(error as Error).message}`;
  }
}

/** HTTP GET; a 2xx or 3xx status passes. */
export async function httpProbe(url: string, timeoutMs: number, signal?: AbortSignal): Promise<string | undefined> {
  try {
    // Loaded before the probe's time starts: the first import takes a few hundred ms on a busy node.
    const { request } = await import('undici');
    const response = await request(url, {
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    });
    await response.body.dump();
    if (response.statusCode >= 200 && response.statusCode < 400) return undefined;
    return `GET ${url} answered ${response.statusCode}`;
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'HeadersTimeoutError' || name === 'AbortError') return `GET ${url} did not answer within ${timeoutMs} ms`;
    return `GET ${url} failed: ${(error as Error).message}`;
  }
}

/** A TCP connect; an accepted connection passes. */
export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`connecting to ${host}:${port} took more than ${timeoutMs} ms`);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      resolve(`connecting to ${host}:${port} failed: ${error.message}`);
    });
  });
}

function localHost(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}

/** The URL with its port swapped for the instance's host port of it, when it has one (a local URL only). */
function withHostPort(url: string, hostPorts: Record<string, number> | undefined): string {
  if (hostPorts === undefined) return url;
  try {
    const parsed = new URL(url);
    if (!localHost(parsed.hostname.replace(/^\[(.*)\]$/, '$1'))) return url;
    const port = parsed.port === '' ? (parsed.protocol === 'https:' ? '443' : '80') : parsed.port;
    const hostPort = hostPorts[port];
    if (hostPort === undefined) return url;
    parsed.port = String(hostPort);
    return parsed.toString();
  } catch {
    return url;
  }
}

function withAddress(url: string, address: string | undefined): string {
  if (address === undefined || address === '127.0.0.1') return url;
  try {
    const parsed = new URL(url);
    if (!localHost(parsed.hostname.replace(/^\[(.*)\]$/, '$1'))) return url;
    parsed.hostname = address.includes(':') ? `[${address}]` : address;
    return parsed.toString();
  } catch {
    return url;
  }
}
