// Builders shared by the state tests: a valid app spec, envelopes, and a
// driver that feeds a machine with growing indexes.
import { ClusterStateMachine } from '../machine.js';
import type { AppSpec, Command, CommandResult, Envelope } from '../types.js';

/** A valid image app spec; `overrides` replace top-level fields. */
export function appSpec(overrides: Partial<AppSpec> = {}): AppSpec {
  const spec: AppSpec = {
    name: 'web',
    tenant: 'default',
    image: 'nginx:1.25',
    readOnly: false,
    replicas: 2,
    environment: { MODE: 'production' },
    ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
    volumes: [],
    limits: { cpuMillis: 1000, memoryBytes: 512 * 1024 * 1024 },
    reservations: { cpuMillis: 500, memoryBytes: 256 * 1024 * 1024 },
    update: { parallelism: 1, delayMs: 0, failureAction: 'pause', order: 'stop-first', monitorMs: 5000 },
    restart: { condition: 'any', delayMs: 1000, windowMs: 0 },
    constraints: [],
    labels: {},
    hivemind: {},
    ...overrides,
  };
  // An override of `undefined` removes the field, as it would be absent in JSON.
  for (const key of Object.keys(spec) as (keyof AppSpec)[]) if (spec[key] === undefined) delete spec[key];
  return spec;
}

/** Node registration for `id`. */
export function registerNode(id: string): Command {
  return {
    type: 'node.register',
    id,
    addresses: { api: `${id}:7070`, peer: `${id}:7071`, gossip: `${id}:7072` },
    labels: { zone: 'a' },
    resources: { cpuMillis: 4000, memoryBytes: 8 * 1024 ** 3 },
  };
}

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** Feeds a machine with envelopes at indexes 1, 2, 3, ...; request ids are fresh unless given. */
export class Driver {
  readonly machine: ClusterStateMachine;
  index = 0;
  time = 1_700_000_000_000;
  readonly envelopes: { index: number; envelope: unknown }[] = [];

  constructor(machine = new ClusterStateMachine()) {
    this.machine = machine;
    this.index = machine.appliedIndex;
  }

  /** Applies `command` in a fresh envelope (or with `requestId`); time advances 1 s per entry. */
  run(command: unknown, requestId?: string, actor = 'token:admin'): CommandResult {
    this.time += 1000;
    return this.raw({ requestId: requestId ?? `request-${this.index + 1}`, time: this.time, actor, command });
  }

  /** Applies an arbitrary (possibly malformed) envelope at the next index. */
  raw(envelope: unknown): CommandResult {
    this.index++;
    this.envelopes.push({ index: this.index, envelope });
    return this.machine.apply(this.index, envelope as Envelope);
  }

  /** Applies `command` and fails the test with the error when it is refused. */
  ok(command: Command, requestId?: string): CommandResult & { ok: true } {
    const result = this.run(command, requestId);
    if (!result.ok) throw new Error(`expected ${command.type} to succeed: ${result.error.code}: ${result.error.message}`);
    return result;
  }

  /** Applies `command` and returns its error, failing the test when it succeeds. */
  refused(command: unknown): { code: string; message: string; field?: string } {
    const result = this.run(command);
    if (result.ok) throw new Error(`expected ${JSON.stringify((command as { type?: unknown }).type)} to be refused`);
    return result.error;
  }
}
