/**
 * `node dist/bench/scheduler-plan.js [--nodes 5000] [--instances 100000] [--round 50000]`:
 * the scheduler's planning and the state machine's apply in one process, no
 * Raft: rounds of `planRound` over the real state machine, each round's
 * `instance.place` commands encoded (msgpackr, as proposals are) and applied,
 * until every instance is placed. Prints the time per round for planning,
 * encoding and applying, and the encoded bytes per placement. A benchmark,
 * not a test: it asserts nothing but that everything gets placed.
 */
import { loadavg } from 'node:os';
import { encodeEnvelope, decodeEnvelope } from '../src/node/replicated-state.js';
import { planRound, SCHEDULER_DEFAULTS } from '../src/scheduler/round.js';
import { simSpec } from '../src/scheduler/sim.js';
import { ClusterStateMachine } from '../src/state/machine.js';
import type { Command, Envelope } from '../src/state/types.js';

function flag(name: string, fallback: number): number {
  const position = process.argv.indexOf(name);
  return position === -1 ? fallback : Number(process.argv[position + 1]);
}

const nodeCount = flag('--nodes', 5000);
const instanceCount = flag('--instances', 100_000);
const options = { ...SCHEDULER_DEFAULTS, placementsPerRoundMax: flag('--round', SCHEDULER_DEFAULTS.placementsPerRoundMax) };
const machine = new ClusterStateMachine();
let requests = 0;
const now = 1_700_000_000_000;

function apply(command: Command): void {
  const envelope: Envelope = { requestId: `plan:${++requests}`, time: now, actor: 'bench', command };
  const result = machine.apply(machine.appliedIndex + 1, decodeEnvelope(encodeEnvelope(envelope)));
  if (!result.ok) throw new Error(`${command.type} refused: ${result.error.message}`);
}

for (let position = 0; position < nodeCount; position++) {
  const id = `sim${String(position).padStart(5, '0')}`;
  apply({
    type: 'node.register',
    id,
    addresses: { api: '127.0.0.1:9', peer: '127.0.0.1:9', gossip: '127.0.0.1:9' },
    labels: { bench: 'sim', zone: `z${position % 10}` },
    resources: { cpuMillis: 64_000, memoryBytes: 256 * 1024 ** 3 },
  });
}
const specs = [];
for (let remaining = instanceCount, index = 0; remaining > 0; index++) {
  const replicas = Math.min(10_000, remaining);
  remaining -= replicas;
  specs.push(simSpec(`bench${index}`, { replicas, reservations: { cpuMillis: 10, memoryBytes: 16 * 1024 ** 2 }, constraints: ['node.labels.bench == sim'] }));
}
apply({ type: 'app.deploy-many', specs });
console.log(`scheduler planning in one process: ${nodeCount} nodes, ${instanceCount} instances; load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
let placed = 0;
const started = performance.now();
for (let round = 1; placed < instanceCount; round++) {
  const planStarted = performance.now();
  const view = machine.schedulerView();
  const plan = planRound({ ...view, now, seed: view.appliedIndex >>> 0, options });
  const planMs = performance.now() - planStarted;
  let encodeMs = 0;
  let applyMs = 0;
  let bytes = 0;
  for (const command of plan.commands) {
    const encodeStarted = performance.now();
    const data = encodeEnvelope({ requestId: `plan:${++requests}`, time: now, actor: 'bench', command });
    encodeMs += performance.now() - encodeStarted;
    if (command.type === 'instance.place') bytes += data.byteLength;
    const applyStarted = performance.now();
    const result = machine.apply(machine.appliedIndex + 1, decodeEnvelope(data));
    applyMs += performance.now() - applyStarted;
    if (!result.ok) throw new Error(`${command.type} refused: ${result.error.message}`);
  }
  placed += plan.placements;
  if (plan.placements === 0) throw new Error(`round ${round} placed nothing; ${plan.unplaceable} unplaceable`);
  console.log(
    `  round ${round}: ${plan.placements} placements; plan ${planMs.toFixed(0)} ms, encode ${encodeMs.toFixed(0)} ms, ` +
      `decode+apply ${applyMs.toFixed(0)} ms; ${(bytes / plan.placements).toFixed(1)} bytes per placement`,
  );
}
const seconds = (performance.now() - started) / 1000;
console.log(`  total: ${seconds.toFixed(2)} s, ${Math.round(instanceCount / seconds)} placements/s`);
