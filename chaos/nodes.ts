/**
 * Real `hivemind` agents, one per test host, each started with
 * `ip netns exec <host> node bin/hivemind.js agent|join ...` and bound to its
 * host's address on the default ports. `ip netns exec` replaces itself with
 * the agent, so the child's pid is the agent's: kill -9, SIGSTOP and SIGCONT
 * reach it directly. Output goes to one log file per host in the run's
 * folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from './network.js';

const BIN = fileURLToPath(new URL('../../bin/hivemind.js', import.meta.url));
export const API_PORT = 7070;
export const PEER_PORT = 7071;

/** Settings every agent of a run shares. */
export interface AgentSettings {
  readonly token: string;
  readonly tickMs: number;
  readonly voterGrace: string;
  /** The agents' `--reschedule-grace`, or undefined for their default. */
  readonly rescheduleGrace?: string;
  /** Each node's data directory is `<dataRoot>/<name>`. */
  readonly dataRoot: string;
  /** One log file per host goes here. */
  readonly logDirectory: string;
  /** Extra environment for the agents (the broken-build proof sets a test flag here). */
  readonly environment: Readonly<Record<string, string>>;
}

/** The state of a host's agent, as the harness last left it. */
export type AgentState = 'running' | 'paused' | 'stopped' | 'left';

/** The agent on one host. Its name changes when a fresh node replaces the one that left. */
export class ChaosNode {
  name: string;
  state: AgentState = 'stopped';
  private child: ChildProcess | undefined;
  private exitedPromise: Promise<void> = Promise.resolve();
  /** How the node last started (see restart). */
  private lastMode: 'agent' | { join: string } = 'agent';

  constructor(
    readonly host: Host,
    private readonly settings: AgentSettings,
  ) {
    this.name = `n${host.index + 1}`;
  }

  /** `https://<address>:7070`. */
  get origin(): string {
    return `https://${this.host.address}:${API_PORT}`;
  }

  get peerAddress(): string {
    return `${this.host.address}:${PEER_PORT}`;
  }

  get dataDirectory(): string {
    return join(this.settings.dataRoot, this.name);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the process is alive (running or paused). */
  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts the node again the way it last started: `agent`, or, for a node
   * that came in by `join`, `join` through `seed` (a member restarts from its
   * data directory whatever the seed; a join that never finished is tried
   * again, where `agent` would refuse).
   */
  restart(seed: string | undefined): void {
    const last = this.lastMode;
    const joinSeed = seed ?? (last === 'agent' ? undefined : last.join);
    // A node that left (a leave whose answer was lost still happened) joins again: `agent` would refuse.
    if (joinSeed !== undefined && (last !== 'agent' || this.leftByItsIdentity())) this.start({ join: joinSeed });
    else this.start('agent');
  }

  /** Whether the data directory's node.json says the node left its cluster. */
  private leftByItsIdentity(): boolean {
    try {
      return (JSON.parse(readFileSync(join(this.dataDirectory, 'node.json'), 'utf8')) as { left?: boolean }).left === true;
    } catch {
      return false;
    }
  }

  /** Starts `agent` (bootstrap or restart from the data directory), or `join <seed>`. */
  start(mode: 'agent' | { join: string }): void {
    if (this.alive) throw new Error(`${this.name} already runs (pid ${this.pid})`);
    this.lastMode = mode;
    mkdirSync(this.settings.logDirectory, { recursive: true });
    const log = openSync(join(this.settings.logDirectory, `${this.host.namespace}.log`), 'a');
    const subcommand = mode === 'agent' ? ['agent'] : ['join', mode.join];
    const args = [
      'netns', 'exec', this.host.namespace, process.execPath, BIN, ...subcommand,
      '--name', this.name, '--data-dir', this.dataDirectory, '--token', this.settings.token,
      '--bind', this.host.address, '--advertise', this.host.address,
      '--tick-ms', String(this.settings.tickMs), '--voter-grace', this.settings.voterGrace,
      // The workloads are processes; a warm pool's namespaces, made inside `ip netns exec`, would outlive a killed agent as stale files.
      '--warm-networks', '0',
      ...(this.settings.rescheduleGrace === undefined ? [] : ['--reschedule-grace', this.settings.rescheduleGrace]),
    ];
    const child = spawn('ip', args, { stdio: ['ignore', log, log], env: { ...process.env, ...this.settings.environment } });
    closeSync(log);
    this.child = child;
    this.state = 'running';
    this.exitedPromise = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Resolves once the current process has exited. */
  exited(): Promise<void> {
    return this.exitedPromise;
  }

  private signal(name: NodeJS.Signals): void {
    if (this.alive) this.child!.kill(name);
  }

  async kill9(): Promise<void> {
    if (!this.alive) return;
    this.signal('SIGKILL');
    await this.exitedPromise;
    this.state = 'stopped';
  }

  pause(): void {
    this.signal('SIGSTOP');
    this.state = 'paused';
  }

  resume(): void {
    this.signal('SIGCONT');
    if (this.alive) this.state = 'running';
  }

  /** SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.alive) return;
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exitedPromise;
    clearTimeout(timer);
    this.state = 'stopped';
  }
}
