// A NodeServices over a real ClusterStateMachine for executor tests: submit
// applies the command to the machine at the next index (as the leader would
// after commit) and listeners hear each apply.
import { Registry } from 'prom-client';
import { NodeCredentials } from '../../security/node-credentials.js';
import type { NodeServices } from '../../node/services.js';
import type { StateListener } from '../../node/replicated-state.js';
import { ClusterStateMachine } from '../../state/machine.js';
import type { Command, CommandResult } from '../../state/types.js';

export class TestCluster {
  readonly machine = new ClusterStateMachine();
  readonly listeners = new Set<StateListener>();
  readonly submitted: Command[] = [];
  readonly logs: string[] = [];
  private index = 0;
  private requests = 0;

  /** Applies `command` as `actor`; fails loudly when refused (tests only submit valid commands). */
  apply(command: Command, actor = 'token:test'): CommandResult {
    this.index++;
    this.requests++;
    const result = this.machine.apply(this.index, { requestId: `test-${this.requests}`, time: Date.now(), actor, command });
    for (const listener of this.listeners) listener({ type: 'applied', index: this.index, commandType: command.type, result });
    return result;
  }

  ok(command: Command): CommandResult {
    const result = this.apply(command);
    if (!result.ok) throw new Error(`${command.type} refused: ${result.error.message}`);
    return result;
  }

  services(nodeId: string, dataDir: string, registry = new Registry()): NodeServices {
    const controller = new AbortController();
    return {
      nodeId,
      config: {} as NodeServices['config'],
      dataDir,
      machine: this.machine,
      listen: (listener) => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
      },
      raftStatus: () => {
        throw new Error('not used by the executor');
      },
      isLeader: () => true,
      // Real credentials without material: the executor opens no peer connection.
      peerTls: new NodeCredentials(nodeId),
      submit: async (command) => {
        this.submitted.push(command);
        return this.apply(command, nodeId);
      },
      addresses: () => ({ api: '127.0.0.1:0', peer: '127.0.0.1:0', gossip: '127.0.0.1:0' }),
      boundPorts: () => ({}),
      log: (component, line) => {
        this.logs.push(`${component}: ${line}`);
        if (process.env.HIVEMIND_TEST_LOGS) console.log(`${component}: ${line}`);
      },
      registry,
      signal: controller.signal,
    };
  }
}
