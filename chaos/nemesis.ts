/**
 * Carries out a schedule of faults against real nodes, one at a time: apply,
 * hold for the planned duration, heal. Each fault is recorded with its real
 * start and end (on the history's clock), its targets, and notes on anything
 * that did not go as planned (a leave that was refused, say), so the report
 * can draw it and the summary can measure unavailability during it.
 */
import { apiErrorCode, type ApiClient } from './http.js';
import type { TestNetwork } from './network.js';
import type { ChaosNode } from './nodes.js';
import { partitionGrudge, type PlannedFault } from './schedule.js';

/** A fault as it happened. Times are milliseconds on the history's clock. */
export interface FaultRecord {
  readonly id: number;
  readonly nemesis: string;
  readonly variant: string;
  /** Names of the nodes the fault was aimed at (all of them for a partition that cuts everyone). */
  targets: string[];
  /** What was done, in words (who drops whose packets, who was killed). */
  description: string;
  readonly startMs: number;
  endMs: number | null;
  notes: string[];
}

/** What the runner acts on. */
export interface NemesisContext {
  readonly network: TestNetwork;
  readonly nodes: readonly ChaosNode[];
  readonly client: ApiClient;
  /** The history's clock. */
  readonly now: () => number;
  readonly log: (line: string) => void;
}

interface ActiveFault {
  readonly record: FaultRecord;
  readonly heal: () => Promise<void>;
}

/** Finds the node that leads now: the one that says it is leader with the highest term, as seen by the nodes alive. */
export async function findLeader(nodes: readonly ChaosNode[], client: ApiClient): Promise<ChaosNode | undefined> {
  const alive = nodes.filter((node) => node.state === 'running');
  const statuses = await Promise.all(alive.map((node) => client.call(node.origin, 'GET', '/v1/status?stale=true', undefined, 1500)));
  let best: { node: ChaosNode; term: number } | undefined;
  for (let position = 0; position < alive.length; position++) {
    const answer = statuses[position]!;
    if (answer.kind !== 'answer' || answer.status !== 200 || answer.body?.role !== 'leader') continue;
    const term = Number(answer.body.term);
    if (best === undefined || term > best.term) best = { node: alive[position]!, term };
  }
  return best?.node;
}

/** Applies faults in order; `healActive()` ends the one under way (used at the end and on interruption). */
export class NemesisRunner {
  readonly records: FaultRecord[] = [];
  private active: ActiveFault | undefined;

  constructor(private readonly context: NemesisContext) {}

  /** Runs the schedule (times relative to the history's clock) until its end or `signal`. */
  async run(schedule: readonly PlannedFault[], signal: AbortSignal): Promise<void> {
    for (const fault of schedule) {
      if (!(await this.sleepUntil(fault.startMs, signal))) break;
      try {
        this.active = await this.apply(fault);
      } catch (error) {
        this.context.log(`fault ${fault.id} (${fault.nemesis} ${fault.variant}) could not be applied: ${(error as Error).message}`);
        const record = this.records.find((item) => item.id === fault.id);
        if (record !== undefined) record.notes.push(`not applied: ${(error as Error).message}`);
        await this.healActive();
        continue;
      }
      await this.sleepUntil(fault.startMs + fault.durationMs, signal);
      await this.healActive();
    }
  }

  /** Heals the fault under way, if any. */
  async healActive(): Promise<void> {
    const active = this.active;
    this.active = undefined;
    if (active === undefined) return;
    try {
      await active.heal();
    } catch (error) {
      active.record.notes.push(`heal failed: ${(error as Error).message}`);
      this.context.log(`fault ${active.record.id}: heal failed: ${(error as Error).message}`);
    }
    active.record.endMs = this.context.now();
    this.context.log(`healed fault ${active.record.id} (${active.record.nemesis} ${active.record.variant}) at ${(active.record.endMs / 1000).toFixed(1)} s`);
  }

  private async sleepUntil(timeMs: number, signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      const remaining = timeMs - this.context.now();
      if (remaining <= 0) return true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(remaining, 250)));
    }
    return false;
  }

  private start(fault: PlannedFault, targets: ChaosNode[], description: string): FaultRecord {
    const record: FaultRecord = {
      id: fault.id,
      nemesis: fault.nemesis,
      variant: fault.variant,
      targets: targets.map((node) => node.name),
      description,
      startMs: this.context.now(),
      endMs: null,
      notes: [],
    };
    this.records.push(record);
    this.context.log(`fault ${fault.id} at ${(record.startMs / 1000).toFixed(1)} s: ${fault.nemesis} ${fault.variant}: ${description}`);
    return record;
  }

  private async leaderOr(fault: PlannedFault, wantLeader: boolean): Promise<{ node: ChaosNode; note?: string }> {
    const { nodes, client } = this.context;
    if (wantLeader) {
      const leader = await findLeader(nodes, client);
      if (leader !== undefined) return { node: leader };
      return { node: nodes[fault.order[0]!]!, note: 'no leader found; aimed at a random node instead' };
    }
    return { node: nodes[fault.order[0]!]! };
  }

  private async apply(fault: PlannedFault): Promise<ActiveFault> {
    switch (fault.nemesis) {
      case 'partition':
        return this.applyPartition(fault);
      case 'loss':
        return this.applyLoss(fault);
      case 'kill':
        return this.applyKill(fault);
      case 'pause':
        return this.applyPause(fault);
      case 'membership':
        return this.applyMembership(fault);
      case 'trust':
        return this.applyTrust(fault);
    }
  }

  private async applyPartition(fault: PlannedFault): Promise<ActiveFault> {
    const { network, nodes } = this.context;
    const leader = fault.variant === 'leader-alone' ? await findLeader(nodes, this.context.client) : undefined;
    const grudge = partitionGrudge(fault.variant, fault.order, leader?.host.index);
    const cut = [...grudge].filter(([, from]) => from.length > 0);
    const description = cut.map(([at, from]) => `${nodes[at]!.name} hears nothing from ${from.map((index) => nodes[index]!.name).join(',')}`).join('; ');
    const record = this.start(fault, cut.map(([at]) => nodes[at]!), description);
    if (fault.variant === 'leader-alone' && leader === undefined) record.notes.push('no leader found; isolated a random node instead');
    await network.drop(grudge);
    return { record, heal: () => network.heal() };
  }

  private async applyLoss(fault: PlannedFault): Promise<ActiveFault> {
    const { network, nodes } = this.context;
    let targets: ChaosNode[];
    let note: string | undefined;
    if (fault.variant === 'all') {
      targets = [...nodes];
    } else {
      const chosen = await this.leaderOr(fault, fault.variant === 'leader');
      targets = [chosen.node];
      note = chosen.note;
    }
    const percent = Math.round(fault.lossProbability * 100);
    const record = this.start(fault, targets, `${targets.map((node) => node.name).join(',')} drop${targets.length === 1 ? 's' : ''} ${percent}% of packets from peers`);
    if (note !== undefined) record.notes.push(note);
    await network.loss(targets.map((node) => node.host.index), fault.lossProbability);
    return { record, heal: () => network.heal() };
  }

  private async applyKill(fault: PlannedFault): Promise<ActiveFault> {
    const { node, note } = await this.leaderOr(fault, fault.variant === 'leader');
    const record = this.start(fault, [node], `kill -9 ${node.name} (pid ${node.pid ?? 'none'}), restart at the heal`);
    if (note !== undefined) record.notes.push(note);
    await node.kill9();
    return {
      record,
      heal: async () => {
        if (!node.alive) node.restart(this.seedFor(node));
      },
    };
  }

  private async applyPause(fault: PlannedFault): Promise<ActiveFault> {
    const { node, note } = await this.leaderOr(fault, fault.variant === 'leader');
    const record = this.start(fault, [node], `SIGSTOP ${node.name}, SIGCONT at the heal`);
    if (note !== undefined) record.notes.push(note);
    node.pause();
    return { record, heal: async () => node.resume() };
  }

  private async applyMembership(fault: PlannedFault): Promise<ActiveFault> {
    const { nodes, client } = this.context;
    const { node, note } = await this.leaderOr(fault, fault.variant === 'leave-rejoin-leader');
    const fresh = fault.variant === 'replace-fresh';
    const previousName = node.name;
    const record = this.start(fault, [node], fresh ? `${previousName} leaves; a fresh node joins on its host at the heal` : `${previousName} leaves, and joins again at the heal`);
    if (note !== undefined) record.notes.push(note);
    const via = nodes.find((other) => other !== node && other.state === 'running');
    if (via === undefined) {
      record.notes.push('no other running node to ask; nothing done');
      return { record, heal: async () => {} };
    }
    const answer = await client.call(via.origin, 'POST', `/v1/nodes/${encodeURIComponent(previousName)}/leave`, {}, 20_000);
    if (answer.kind !== 'answer' || answer.status !== 200) {
      const why = answer.kind === 'answer' ? `${answer.status} ${apiErrorCode(answer.body) ?? ''} ${answer.body?.error?.message ?? ''}`.trim() : answer.message;
      record.notes.push(`leave refused or unanswered (${why}); the node stays`);
      return { record, heal: async () => {} };
    }
    const exited = await Promise.race([node.exited().then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000))]);
    if (!exited) {
      record.notes.push(`${previousName} was still running 15 s after leaving; killed`);
      await node.kill9();
    }
    node.state = 'left';
    return {
      record,
      heal: async () => {
        const seed = nodes.find((other) => other !== node && other.state === 'running');
        if (seed === undefined) throw new Error(`no running node to join ${node.name} through`);
        if (fresh) node.name = `${node.name.split('r')[0]}r${fault.id}`;
        record.notes.push(fresh ? `fresh node ${node.name} joined through ${seed.name}` : `${node.name} joined again through ${seed.name}`);
        node.start({ join: seed.peerAddress });
      },
    };
  }

  /**
   * A CA rotation (`POST /v1/ca/rotate` through a random running node), and
   * with `ca-rotate-node-down` one node killed first and restarted only at
   * the heal: it sleeps through the whole rotation and must find its own way
   * back in (its certificate is of a CA no longer trusted).
   */
  private async applyTrust(fault: PlannedFault): Promise<ActiveFault> {
    const { nodes, client } = this.context;
    const down = fault.variant === 'ca-rotate-node-down' ? nodes[fault.order[0]!]! : undefined;
    const via = nodes.find((node) => node !== down && node.state === 'running');
    const record = this.start(fault, down === undefined ? [] : [down], down === undefined ? 'the cluster CA rotates' : `kill -9 ${down.name}, the cluster CA rotates, ${down.name} restarts at the heal`);
    if (down !== undefined) await down.kill9();
    const heal = async () => {
      if (down !== undefined && !down.alive) down.restart(this.seedFor(down));
    };
    if (via === undefined) {
      record.notes.push('no running node to ask; nothing rotated');
      return { record, heal };
    }
    const answer = await client.call(via.origin, 'POST', '/v1/ca/rotate', {}, 20_000);
    if (answer.kind !== 'answer' || answer.status !== 200) {
      const why = answer.kind === 'answer' ? `${answer.status} ${apiErrorCode(answer.body) ?? ''} ${answer.body?.error?.message ?? ''}`.trim() : answer.message;
      record.notes.push(`rotation refused or unanswered (${why})`);
    } else {
      record.notes.push(`rotating to CA sha256:${String(answer.body?.signing ?? '').slice(0, 16)}`);
    }
    return { record, heal };
  }

  /** A running node's peer address other than `node`'s, to join through. */
  private seedFor(node: ChaosNode): string | undefined {
    return this.context.nodes.find((other) => other !== node && other.state === 'running')?.peerAddress;
  }

  /** Every node back: network healed, paused nodes resumed, stopped ones restarted, left ones joined again. */
  async healEverything(): Promise<void> {
    await this.healActive();
    const { network, nodes } = this.context;
    await network.heal();
    for (const node of nodes) {
      if (node.state === 'paused') node.resume();
      // Stopped by a fault, or exited by itself (a join that gave up): started again.
      if ((node.state === 'stopped' || node.state === 'running') && !node.alive) node.restart(this.seedFor(node));
      if (node.state === 'left') {
        const seed = this.seedFor(node);
        if (seed !== undefined) node.start({ join: seed });
      }
    }
  }
}
