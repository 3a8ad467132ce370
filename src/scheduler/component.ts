/**
 * The scheduler as a node component: runs on every node, acts only while
 * this node leads. After applies (debounced) and on a period, it plans one
 * round (`planRound`, pure) over the local replica and proposes the
 * commands. This file is the I/O around the pure planner: clock, timers,
 * proposals, logs and metrics.
 *
 * One round at a time: a round proposes its commands concurrently (each
 * stands alone) and waits for their results before the next round plans, so
 * a round always sees what the previous one did.
 */
import { Counter, Histogram } from 'prom-client';
import type { ComponentFactory, NodeComponent, NodeServices } from '../agent/services.js';
import type { CommandResult } from '../state/types.js';
import { planRound, SCHEDULER_DEFAULTS, type SchedulerOptions } from './round.js';

/** How the component runs; the planning settings are `SchedulerOptions`. */
export interface SchedulerComponentOptions extends SchedulerOptions {
  /** The wait after an apply before a round (applies come in bursts). */
  debounceMs: number;
  /** A round at least this often, for what time alone changes (grace, backoff, monitor, delays, deadlines). */
  periodMs: number;
  /** A proposal's time limit. */
  proposalTimeoutMs: number;
}

export const SCHEDULER_COMPONENT_DEFAULTS: SchedulerComponentOptions = {
  ...SCHEDULER_DEFAULTS,
  debounceMs: 50,
  periodMs: 1_000,
  proposalTimeoutMs: 10_000,
};

/** The scheduler component (name `scheduler`). */
export class SchedulerComponent implements NodeComponent {
  readonly name = 'scheduler';
  readonly #services: NodeServices;
  readonly #options: SchedulerComponentOptions;
  #stopListening: (() => void) | undefined;
  #period: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running = false;
  #again = false;
  #stopped = false;
  readonly #proposals: Counter<'command' | 'outcome'>;
  readonly #roundSeconds: Histogram;
  readonly #proposalSeconds: Histogram<'command'>;
  readonly #placed: Counter;

  constructor(services: NodeServices, options: Partial<SchedulerComponentOptions> = {}) {
    this.#services = services;
    this.#options = { ...SCHEDULER_COMPONENT_DEFAULTS, ...options };
    this.#proposals = new Counter({
      name: 'hivemind_scheduler_proposals_total',
      help: 'Commands the scheduler proposed, by type and outcome (ok, refused, error).',
      labelNames: ['command', 'outcome'],
      registers: [services.registry],
    });
    this.#roundSeconds = new Histogram({ name: 'hivemind_scheduler_round_seconds', help: 'Time to plan one scheduling round.', registers: [services.registry] });
    this.#proposalSeconds = new Histogram({
      name: 'hivemind_scheduler_proposal_seconds',
      help: 'From proposing a scheduler command to its apply result, by command type.',
      labelNames: ['command'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
      registers: [services.registry],
    });
    this.#placed = new Counter({ name: 'hivemind_scheduler_placements_total', help: 'Instances placed by committed instance.place commands.', registers: [services.registry] });
  }

  async start(): Promise<void> {
    this.#stopListening = this.#services.listen((event) => {
      if (event.type === 'restored' || event.commandType !== 'node.heartbeat') this.#schedule();
    });
    this.#period = setInterval(() => this.#schedule(), this.#options.periodMs);
    this.#period.unref();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopListening?.();
    if (this.#period) clearInterval(this.#period);
    if (this.#debounce) clearTimeout(this.#debounce);
  }

  #schedule(): void {
    if (this.#stopped || this.#debounce !== undefined || !this.#services.isLeader()) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.#round();
    }, this.#options.debounceMs);
    this.#debounce.unref();
  }

  async #round(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    try {
      if (!this.#services.isLeader()) return;
      const started = performance.now();
      const view = this.#services.machine.schedulerView();
      const plan = planRound({ ...view, now: Date.now(), seed: view.appliedIndex >>> 0, options: this.#options });
      this.#roundSeconds.observe((performance.now() - started) / 1000);
      let applied = 0;
      await Promise.all(plan.commands.map(async (command) => {
        let result: CommandResult;
        const proposed = performance.now();
        try {
          result = await this.#services.submit(command, { timeoutMs: this.#options.proposalTimeoutMs });
          this.#proposalSeconds.observe({ command: command.type }, (performance.now() - proposed) / 1000);
        } catch (error) {
          this.#proposals.inc({ command: command.type, outcome: 'error' });
          this.#services.log('scheduler', `could not propose ${command.type}: ${(error as Error).message}`);
          return;
        }
        this.#proposals.inc({ command: command.type, outcome: result.ok ? 'ok' : 'refused' });
        if (result.ok) applied++;
        if (result.ok && command.type === 'instance.place') this.#placed.inc(command.placements.length);
        // A refusal means the state moved on since the round planned; the next round plans again.
        if (!result.ok && result.error.code !== 'conflict' && result.error.code !== 'not-found') {
          this.#services.log('scheduler', `${command.type} refused: ${result.error.message}`);
        }
      }));
      // Plan again at once after progress; after refusals only, the period retries.
      if (applied > 0) this.#again = true;
    } catch (error) {
      this.#services.log('scheduler', `round failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      this.#running = false;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.#schedule();
      }
    }
  }
}

/** The factory listed in `src/agent/components.ts`. */
export const schedulerComponent: ComponentFactory = (services) =>
  new SchedulerComponent(services, { rescheduleGraceMs: services.config.rescheduleGraceMs, progressDeadlineMs: services.config.progressDeadlineMs });
