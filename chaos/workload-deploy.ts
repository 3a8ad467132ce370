/**
 * The `deploy` workload: a few clients, each deploying, scaling and deleting
 * its own process apps (`command: ["sleep", "100000"]`, 1 to 3 replicas,
 * names unique to the client) through random nodes' APIs, one operation at a
 * time. Each operation goes to the deploy history (`deploy-history.jsonl`) as
 * `invoke` and `ok` / `fail` / `info`, with `key` the app's name and `value`
 * its replica count (for a delete, 0):
 *
 * - `ok`: a 2xx answer;
 * - `fail`: certainly no effect: a 4xx (refused before any proposal, such as
 *   `404 not-found` for a scale of an app whose deploy never applied), or a
 *   connection never made;
 * - `info`: anything else (5xx, a timeout or broken connection after
 *   sending): the command may have been, or may later be, committed.
 *
 * After the heal, `awaitConvergence` polls the cluster and the hosts until
 * the state matches what the operations allow (chaos/deploy-checks.ts), or
 * the bound passes.
 */
import { checkConvergence, expectApps, type AppExpectations, type ObservedCluster, type ObservedInstance } from './deploy-checks.js';
import { apiErrorCode, type ApiClient, type HttpOutcome } from './http.js';
import { SeededRandom } from './random.js';
import type { AppOperationFunction, HistoryRecorder } from './recorder.js';
import { findWorkloadProcesses } from './workload-processes.js';
import type { WorkloadTarget } from './workload-register.js';

/** The command every app runs; the host check counts processes running exactly this. */
export const APP_COMMAND = ['sleep', '100000'] as const;
/** The tenant every app belongs to. */
const TENANT = 'default';
/** The first history process of the deploy clients (register clients count from 0). */
export const DEPLOY_PROCESS_BASE = 1000;
/** Apps one client keeps at once, so that the hosts are not flooded (replicas are at most 3). */
const LIVE_APPS_MAX = 3;
const REPLICAS_MAX = 3;

/** Settings of the deploy workload. */
export interface DeployWorkloadOptions {
  readonly seed: number;
  readonly clients: number;
  readonly targets: readonly WorkloadTarget[];
  readonly client: ApiClient;
  readonly recorder: HistoryRecorder;
  /** Pause between one client's operations, drawn from [0, thinkMsMax]. */
  readonly thinkMsMax: number;
  /** Pause after a fail or info. */
  readonly backoffMs: number;
}

type OutcomeType = 'ok' | 'fail' | 'info';

function describe(outcome: HttpOutcome): string {
  if (outcome.kind !== 'answer') return outcome.message;
  return `${outcome.status} ${apiErrorCode(outcome.body) ?? ''}`.trim();
}

function outcomeOf(answer: HttpOutcome): { type: OutcomeType; error?: string } {
  if (answer.kind === 'answer' && answer.status >= 200 && answer.status < 300) return { type: 'ok' };
  if (answer.kind === 'not-sent') return { type: 'fail', error: describe(answer) };
  if (answer.kind === 'answer' && answer.status >= 400 && answer.status < 500) return { type: 'fail', error: describe(answer) };
  return { type: 'info', error: describe(answer) };
}

/** The app file of one app. */
export function appFile(name: string, replicas: number): string {
  return ['services:', `  ${name}:`, `    command: ${JSON.stringify(APP_COMMAND)}`, `    deploy: { replicas: ${replicas} }`, ''].join('\n');
}

/** Runs the clients until `stop()`. */
export class DeployWorkload {
  private running = true;
  private readonly clients: Promise<void>[] = [];

  constructor(private readonly options: DeployWorkloadOptions) {}

  start(): void {
    for (let index = 0; index < this.options.clients; index++) this.clients.push(this.runClient(DEPLOY_PROCESS_BASE + index));
  }

  /** Asks every client to stop after its current operation and waits for them. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.clients);
  }

  private async runClient(process: number): Promise<void> {
    const random = SeededRandom.derive(this.options.seed, `deploy-client-${process}`);
    // Apps this client may still have (deleted ones leave; an app whose delete is unknown leaves too: its name is not reused).
    const apps: string[] = [];
    let counter = 0;
    while (this.running) {
      const target = random.pick(this.options.targets);
      let outcome: OutcomeType;
      if (apps.length === 0 || (apps.length < LIVE_APPS_MAX && random.next() < 0.35)) {
        const name = `c${process}-app${++counter}`;
        apps.push(name);
        outcome = await this.operate(process, target, 'deploy', name, random.integer(1, REPLICAS_MAX));
        if (outcome === 'fail') apps.splice(apps.indexOf(name), 1);
      } else {
        const name = random.pick(apps);
        if (random.next() < 0.65) {
          outcome = await this.operate(process, target, 'scale', name, random.integer(1, REPLICAS_MAX));
        } else {
          outcome = await this.operate(process, target, 'delete', name, 0);
          if (outcome !== 'fail') apps.splice(apps.indexOf(name), 1);
        }
      }
      const pauseMs = outcome === 'ok' ? random.integer(0, this.options.thinkMsMax) : this.options.backoffMs;
      if (pauseMs > 0 && this.running) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  private async operate(process: number, target: WorkloadTarget, f: AppOperationFunction, name: string, replicas: number): Promise<OutcomeType> {
    const { client, recorder } = this.options;
    const invoke = recorder.record({ process, type: 'invoke', f, key: name, value: replicas, node: target.name() });
    const base = `/v1/apps/${TENANT}/${name}`;
    const answer =
      f === 'deploy'
        ? await client.call(target.origin, 'POST', '/v1/deploy', { fileName: `${name}.yaml`, content: appFile(name, replicas), tenant: TENANT })
        : f === 'scale'
          ? await client.call(target.origin, 'POST', `${base}/scale`, { replicas })
          : await client.call(target.origin, 'DELETE', base);
    const outcome = outcomeOf(answer);
    recorder.record({ process, type: outcome.type, f, key: name, value: replicas, ...(outcome.error === undefined ? {} : { error: outcome.error }), node: invoke.node! });
    return outcome.type;
  }
}

/** A node of the run as the convergence check reads it. */
export interface ConvergenceNode {
  readonly name: string;
  readonly origin: string;
}

/** What `awaitConvergence` found. */
export interface ConvergenceResult {
  /** Milliseconds from the start of the wait until the state matched; null if it did not within the bound. */
  readonly ms: number | null;
  readonly boundMs: number;
  /** The findings of the last look (empty when it converged). */
  readonly violations: readonly string[];
  /** Figures of the last look. */
  readonly apps: { readonly present: number; readonly absent: number; readonly either: number };
  readonly instances: number;
  readonly processes: number;
  readonly looks: number;
}

async function observe(nodes: readonly ConvergenceNode[], client: ApiClient, dataRoot: string): Promise<ObservedCluster | string> {
  const first = nodes[0]!;
  const nodeAnswer = await client.call(first.origin, 'GET', '/v1/nodes');
  if (nodeAnswer.kind !== 'answer' || nodeAnswer.status !== 200) return `GET /v1/nodes on ${first.name}: ${describe(nodeAnswer)}`;
  const nodeStatus = new Map<string, string>((nodeAnswer.body.nodes as { id: string; status: string }[]).map((record) => [record.id, record.status]));
  // Every node's view must agree: one that lags behind would serve stale placements to its users.
  let instances: ObservedInstance[] | undefined;
  let reference = '';
  for (const node of nodes) {
    const answer = await client.call(node.origin, 'GET', `/v1/instances?tenant=${TENANT}`);
    if (answer.kind !== 'answer' || answer.status !== 200) return `GET /v1/instances on ${node.name}: ${describe(answer)}`;
    const listed = (answer.body.instances as any[]).map(
      (instance): ObservedInstance => ({ id: instance.id, app: instance.app, slot: instance.slot, node: instance.node, desired: instance.desired, state: instance.status?.state ?? 'unknown' }),
    );
    const placement = JSON.stringify(listed.map((instance) => [instance.id, instance.node, instance.desired]).sort());
    if (instances === undefined) {
      instances = listed;
      reference = placement;
    } else if (placement !== reference) {
      return `nodes ${first.name} and ${node.name} list different instances or placements`;
    }
  }
  return { instances: instances!, nodeStatus, processes: findWorkloadProcesses(dataRoot, APP_COMMAND) };
}

/**
 * Looks at the cluster every `intervalMs` until it matches what the deploy
 * history's operations allow, or `boundMs` passes; call it with no client
 * running.
 */
export async function awaitConvergence(options: {
  readonly nodes: readonly ConvergenceNode[];
  readonly client: ApiClient;
  readonly dataRoot: string;
  readonly events: Parameters<typeof expectApps>[0];
  readonly boundMs: number;
  readonly intervalMs: number;
}): Promise<ConvergenceResult> {
  const expected: AppExpectations = expectApps(options.events);
  const allowed = [...expected.values()];
  const apps = {
    present: allowed.filter((states) => states.length === 1 && states[0]!.exists).length,
    absent: allowed.filter((states) => states.length === 1 && !states[0]!.exists).length,
    either: allowed.filter((states) => states.length > 1).length,
  };
  const started = Date.now();
  let looks = 0;
  for (;;) {
    looks++;
    const observed = await observe(options.nodes, options.client, options.dataRoot);
    const violations = typeof observed === 'string' ? [`cannot read the state: ${observed}`] : checkConvergence(expected, observed);
    const elapsed = Date.now() - started;
    const figures = { apps, instances: typeof observed === 'string' ? 0 : observed.instances.length, processes: typeof observed === 'string' ? 0 : observed.processes.length, looks };
    if (violations.length === 0) return { ms: elapsed, boundMs: options.boundMs, violations, ...figures };
    if (elapsed > options.boundMs) return { ms: null, boundMs: options.boundMs, violations, ...figures };
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
  }
}
