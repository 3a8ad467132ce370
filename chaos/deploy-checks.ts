/**
 * The deploy workload's checker: what the acknowledged operations say must
 * exist, and whether an observed cluster state matches it. Pure: events and
 * observations in, findings out.
 *
 * Expectations. One client owns each app and does one operation at a time on
 * it, so an app's operations are a sequence. Starting absent, an `ok`
 * operation sets the state (deploy or scale of n: present with n replicas;
 * delete: absent), a `fail` leaves it. An `info` (unknown) operation may take
 * effect at any time after its call, or never, so it may also be the last to
 * take effect: its effect is allowed as an end state besides the one the
 * last `ok` left. (A scale with unknown outcome is allowed as "present with
 * n", a little more than it could really do when the app was deleted: the
 * check is weaker there, never wrong.)
 *
 * Convergence. For every app, some allowed state holds: absent means no
 * instance record and no process; present with n means exactly n instances
 * wanted running, in state running (or healthy), each placed on a node whose
 * record is `up`, no two in one slot, and on the hosts exactly one workload
 * process per instance, on the host of the node it is placed on, nowhere
 * else. Instances or processes of apps the workload never deployed are
 * findings too. Retired records (desired stopped) of a present app are not:
 * the scheduler may keep one up to its `retiredTimeoutMs` (2 min), but a
 * process of one is.
 */
import type { HistoryEvent } from './recorder.js';

/** A state an app may end in: absent, or present with a replica count. */
export type AppState = { readonly exists: false } | { readonly exists: true; readonly replicas: number };

/** Per app (its name), the end states the acknowledged operations allow; the first is the one the last `ok` left. */
export type AppExpectations = ReadonlyMap<string, readonly AppState[]>;

/** An instance as `GET /v1/instances` lists it (the fields the check reads). */
export interface ObservedInstance {
  readonly id: string;
  readonly app: string;
  readonly slot: number;
  readonly node?: string;
  readonly desired: 'running' | 'stopped';
  readonly state: string;
}

/** A workload process found on a host: the instance it runs (from its wrapper) and the data directory's node name. */
export interface ObservedProcess {
  readonly pid: number;
  readonly instanceId: string;
  /** The node whose data directory the process's wrapper names. */
  readonly node: string;
}

/** What the harness saw of the cluster at one moment. */
export interface ObservedCluster {
  readonly instances: readonly ObservedInstance[];
  /** Node id to its record's status (`up`, `suspect`, `down`, `left`). */
  readonly nodeStatus: ReadonlyMap<string, string>;
  readonly processes: readonly ObservedProcess[];
}

const RUNNING_STATES = new Set(['running', 'healthy']);

function stateOf(event: HistoryEvent): AppState {
  return event.f === 'delete' ? { exists: false } : { exists: true, replicas: event.value as number };
}

function sameState(a: AppState, b: AppState): boolean {
  return a.exists === b.exists && (!a.exists || a.replicas === (b as { replicas: number }).replicas);
}

function describeState(state: AppState): string {
  return state.exists ? `${state.replicas} instance(s)` : 'deleted';
}

/** The end states each app's recorded operations allow (events of the deploy history, in the order recorded). */
export function expectApps(events: readonly HistoryEvent[]): AppExpectations {
  const settled = new Map<string, AppState>();
  const unknown = new Map<string, AppState[]>();
  const invocations = new Map<number, HistoryEvent>();
  for (const event of events) {
    if (event.f !== 'deploy' && event.f !== 'scale' && event.f !== 'delete') continue;
    if (!settled.has(event.key)) settled.set(event.key, { exists: false });
    if (event.type === 'invoke') {
      invocations.set(event.process, event);
      continue;
    }
    invocations.delete(event.process);
    if (event.type === 'ok') settled.set(event.key, stateOf(event));
    else if (event.type === 'info') unknown.set(event.key, [...(unknown.get(event.key) ?? []), stateOf(event)]);
  }
  // An operation never completed (the run ended during it) is unknown too.
  for (const invoke of invocations.values()) unknown.set(invoke.key, [...(unknown.get(invoke.key) ?? []), stateOf(invoke)]);
  const expectations = new Map<string, AppState[]>();
  for (const [app, state] of settled) {
    const allowed = [state];
    for (const other of unknown.get(app) ?? []) if (!allowed.some((known) => sameState(known, other))) allowed.push(other);
    expectations.set(app, allowed);
  }
  return expectations;
}

/** How far one app is from one state; empty when it holds. */
function appFindings(app: string, state: AppState, observed: ObservedCluster): string[] {
  const instances = observed.instances.filter((instance) => instance.app === app);
  const wanted = instances.filter((instance) => instance.desired === 'running');
  const processes = observed.processes.filter((process) => instanceApp(process.instanceId) === app);
  const findings: string[] = [];
  if (!state.exists) {
    if (instances.length > 0) findings.push(`${instances.length} instance record(s) left (${instances.map((instance) => instance.id).join(', ')})`);
    if (processes.length > 0) findings.push(`${processes.length} process(es) left (${processes.map((process) => `pid ${process.pid} on ${process.node}`).join(', ')})`);
    return findings;
  }
  if (wanted.length !== state.replicas) findings.push(`${wanted.length} instance(s) wanted running, not ${state.replicas}`);
  // A retired record may stay a while by design (up to the scheduler's retiredTimeoutMs when its executor never reports it stopped); its process may not.
  const slots = new Map<number, string[]>();
  for (const instance of wanted) {
    slots.set(instance.slot, [...(slots.get(instance.slot) ?? []), instance.id]);
    if (instance.node === undefined) {
      findings.push(`${instance.id} is not placed`);
      continue;
    }
    const status = observed.nodeStatus.get(instance.node) ?? 'unknown';
    if (status !== 'up') findings.push(`${instance.id} is placed on ${instance.node}, whose status is ${status}`);
    if (!RUNNING_STATES.has(instance.state)) findings.push(`${instance.id} on ${instance.node} is ${instance.state}, not running`);
    const own = processes.filter((process) => process.instanceId === instance.id);
    const there = own.filter((process) => process.node === instance.node).length;
    if (there !== 1) findings.push(`${instance.id} has ${there} process(es) on ${instance.node}, its node, not 1`);
    const elsewhere = own.filter((process) => process.node !== instance.node);
    if (elsewhere.length > 0) findings.push(`${instance.id} also runs elsewhere: ${elsewhere.map((process) => `pid ${process.pid} on ${process.node}`).join(', ')}`);
  }
  for (const [slot, ids] of slots) if (ids.length > 1) findings.push(`slot ${slot} is held twice: ${ids.join(', ')}`);
  const known = new Set(wanted.map((instance) => instance.id));
  const strays = processes.filter((process) => !known.has(process.instanceId));
  if (strays.length > 0) findings.push(`process(es) of instances not wanted running: ${strays.map((process) => `${process.instanceId} pid ${process.pid} on ${process.node}`).join(', ')}`);
  return findings;
}

/** The app of an instance id `tenant.app.slot.serial`. */
export function instanceApp(instanceId: string): string {
  return instanceId.split('.')[1] ?? '';
}

/**
 * Every violation of the expectations in `observed`, one line each; empty
 * when every app is in one of its allowed states and nothing else runs. An
 * app with several allowed states is reported against the nearest one (the
 * fewest findings).
 */
export function checkConvergence(expected: AppExpectations, observed: ObservedCluster): string[] {
  const violations: string[] = [];
  for (const [app, allowed] of expected) {
    let best: string[] | undefined;
    let bestState = allowed[0]!;
    for (const state of allowed) {
      const findings = appFindings(app, state, observed);
      if (best === undefined || findings.length < best.length) {
        best = findings;
        bestState = state;
      }
    }
    if (best!.length === 0) continue;
    const choices = allowed.length > 1 ? ` (nearest of the allowed ${allowed.map(describeState).join(' or ')})` : '';
    violations.push(`app ${app}: expected ${describeState(bestState)}${choices}: ${best!.join('; ')}`);
  }
  const strangers = new Set([
    ...observed.instances.map((instance) => instance.app).filter((app) => !expected.has(app)),
    ...observed.processes.map((process) => instanceApp(process.instanceId)).filter((app) => !expected.has(app)),
  ]);
  for (const app of strangers) violations.push(`app ${app}: never deployed by the workload, yet it has instances or processes`);
  return violations;
}
