/**
 * The chaos harness's command line:
 *
 *   npm run chaos -- --nodes 5 --time 60s --nemesis partition,kill,pause,loss,membership \
 *     --workload register --seed S [--out DIR]
 *
 * Needs root (network namespaces, iptables). One run at a time on a machine:
 * the run holds /tmp/hivemind-chaos.lock (through `flock`) from start to end.
 * Exit status: 0 valid, 1 a violation (or no recovery), 2 bad arguments or
 * the harness could not run, 3 undecided (the linearizability search gave up).
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { holdMachineLock } from './machine-lock.js';
import { runChaos } from './run.js';
import { parseNemesisList, type NemesisSelection } from './schedule.js';
import { formatSummary } from './summary.js';

const RUNS_DIRECTORY = fileURLToPath(new URL('../../chaos/runs', import.meta.url));
/** The test-only flag of the broken-build proof, passed on to the agents when set. */
const UNSAFE_READS_VARIABLE = 'HIVEMIND_TEST_UNSAFE_LOCAL_READS';

const defaults = {
  nodes: '5',
  time: '60s',
  nemesis: 'partition,kill,pause,loss,membership',
  workload: 'register',
  'tick-ms': '100',
  'voter-grace': '30s',
  'clients-per-node': '2',
  keys: '3',
  'recovery-bound': '30s',
  'deploy-clients': '3',
  'converge-bound': '60s',
} as const;

/** The deploy workload wants moves within a run, so its agents get a short reschedule grace unless one is given. */
const DEPLOY_RESCHEDULE_GRACE = '3s';

const usage = `usage: npm run chaos -- [--nodes N] [--time 60s] [--nemesis partition,kill,pause,loss,membership|none]
         [--workload register|deploy|register,deploy] [--seed S] [--out DIR] [--tick-ms 100] [--voter-grace 30s]
         [--clients-per-node 2] [--keys 3] [--recovery-bound 30s]
         [--deploy-clients 3] [--converge-bound 60s] [--reschedule-grace 3s (with deploy; else the agents' default)]
a nemesis may be narrowed to one variant: --nemesis partition:ring,kill:leader (docs/chaos.md lists them)`;

class UsageError extends Error {}

/** `500ms`, `60s`, `30m`, `1h`, or a bare number of seconds, in milliseconds. */
function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new UsageError(`${flag} takes a duration such as 60s, 30m or 500ms, got "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, got "${text}"`);
  return value;
}

async function main(): Promise<number> {
  const log = (line: string) => process.stderr.write(`chaos: ${line}\n`);
  let parsed;
  try {
    parsed = parseArgs({
      options: Object.fromEntries([...Object.keys(defaults), 'seed', 'out', 'reschedule-grace'].map((name) => [name, { type: 'string' as const }])),
      allowPositionals: false,
    });
  } catch (error) {
    process.stderr.write(`chaos: ${(error as Error).message}\n${usage}\n`);
    return 2;
  }
  const given = parsed.values as Record<string, string | undefined>;
  const value = (name: keyof typeof defaults) => given[name] ?? defaults[name];
  let options;
  try {
    const nodes = wholeNumber(value('nodes'), '--nodes', 1, 5);
    const timeMs = parseDuration(value('time'), '--time');
    const nemesisText = value('nemesis');
    const selections: NemesisSelection[] | string = nemesisText === 'none' ? [] : parseNemesisList(nemesisText);
    if (typeof selections === 'string') throw new UsageError(selections);
    if (nodes < 3 && selections.length > 0) throw new UsageError('faults need at least 3 nodes (--nodes 3), or --nemesis none');
    const workload = value('workload');
    const workloads = new Set(workload.split(','));
    if (workloads.size === 0 || [...workloads].some((name) => name !== 'register' && name !== 'deploy')) {
      throw new UsageError(`--workload must be register, deploy, or register,deploy, got "${workload}"`);
    }
    const deployClients = wholeNumber(value('deploy-clients'), '--deploy-clients', 1, 10);
    const convergeBoundMs = parseDuration(value('converge-bound'), '--converge-bound');
    const rescheduleGrace = given['reschedule-grace'] ?? (workloads.has('deploy') ? DEPLOY_RESCHEDULE_GRACE : undefined);
    if (rescheduleGrace !== undefined) parseDuration(rescheduleGrace, '--reschedule-grace');
    const seed = given.seed === undefined ? randomInt(1, 2 ** 31) : wholeNumber(given.seed, '--seed', 0, Number.MAX_SAFE_INTEGER);
    const tickMs = wholeNumber(value('tick-ms'), '--tick-ms', 5, 1000);
    const voterGrace = value('voter-grace');
    parseDuration(voterGrace, '--voter-grace');
    const clientsPerNode = wholeNumber(value('clients-per-node'), '--clients-per-node', 1, 10);
    const keyCount = wholeNumber(value('keys'), '--keys', 1, 20);
    const recoveryBoundMs = parseDuration(value('recovery-bound'), '--recovery-bound');
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const outDirectory = given.out ?? join(RUNS_DIRECTORY, `${seed}-${stamp}`);
    const flags = [`--nodes ${nodes}`, `--time ${value('time')}`, `--nemesis ${nemesisText}`, `--workload ${workload}`, `--seed ${seed}`];
    for (const name of ['tick-ms', 'voter-grace', 'clients-per-node', 'keys', 'recovery-bound', 'deploy-clients', 'converge-bound', 'reschedule-grace'] as const) {
      if (given[name] !== undefined) flags.push(`--${name} ${given[name]}`);
    }
    const unsafe = process.env[UNSAFE_READS_VARIABLE];
    const agentEnvironment: Record<string, string> = unsafe === undefined || unsafe === '' ? {} : { [UNSAFE_READS_VARIABLE]: unsafe };
    const command = `${unsafe ? `${UNSAFE_READS_VARIABLE}=${unsafe} ` : ''}npm run chaos -- ${flags.join(' ')}`;
    const workloadSelection = { register: workloads.has('register'), deploy: workloads.has('deploy') };
    options = { nodes, timeMs, selections, workload, workloads: workloadSelection, deployClients, convergeBoundMs, rescheduleGrace, seed, outDirectory, tickMs, voterGrace, clientsPerNode, keyCount, recoveryBoundMs, agentEnvironment, command } as const;
    if (unsafe) log(`${UNSAFE_READS_VARIABLE}=${unsafe}: the agents serve KV reads from their local replica (a deliberately broken build)`);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`chaos: ${error.message}\n${usage}\n`);
    return 2;
  }
  const interrupt = new AbortController();
  let signals = 0;
  const onSignal = (name: string) => {
    signals++;
    if (signals === 1) log(`${name}: healing, stopping the nodes and removing the test hosts (again to force)`);
    else {
      log(`${name} again: exiting now; the next run removes what is left`);
      process.exit(130);
    }
    interrupt.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  try {
    await holdMachineLock(log);
    log(`seed ${options.seed}; output in ${options.outDirectory}`);
    const summary = await runChaos({ ...options, log, signal: interrupt.signal });
    process.stdout.write(formatSummary(summary) + '\n');
    if (interrupt.signal.aborted) return 130;
    return summary.verdict === 'valid' ? 0 : summary.verdict === 'invalid' ? 1 : 3;
  } catch (error) {
    log(`the run could not complete: ${(error as Error).message}`);
    log(`reproduce: ${options.command}`);
    return 2;
  }
}

process.exit(await main());
