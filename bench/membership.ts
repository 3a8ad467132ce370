/**
 * `npm run bench:membership [-- --sizes 5,20 --trials 3 --json]`
 *
 * Failure detection of real members on loopback: N member processes (the
 * gossip runtime alone, `src/membership/member-main.ts`, encrypted, default
 * timings), then, per trial, kill -9 of one member and the time until every
 * other member has declared it dead; the member is restarted and the next
 * trial waits until everyone sees it alive again. Any other member declared
 * dead during the run is a false positive. Where `serf` is installed the
 * same run uses N `serf agent`s (default LAN profile, encryption on) and
 * the ratio is printed. Times are stamped by this process when it reads each
 * member's line, the same way for both systems. Run it alone (flock).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpuTimeMs, freePorts, killAndWait, Resources, rssBytes, sleep } from './processes.js';
import { defaultSwimOptions } from '../src/membership/swim.js';

const MEMBER_MAIN = fileURLToPath(new URL('../src/membership/member-main.js', import.meta.url));
const DETECTION_TIMEOUT_MS = 90_000;
const CONVERGE_TIMEOUT_MS = 90_000;

interface Options {
  sizes: number[];
  trials: number;
  json: boolean;
  systems: ('hivemind' | 'serf')[];
}

function parseOptions(argv: string[]): Options {
  const options: Options = { sizes: [5, 20], trials: 3, json: false, systems: ['hivemind', 'serf'] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--json') options.json = true;
    else if (flag === '--sizes') options.sizes = value().split(',').map(Number);
    else if (flag === '--trials') options.trials = Number(value());
    else if (flag === '--only') options.systems = [value() as 'hivemind' | 'serf'];
    else throw new Error(`unknown flag ${flag} (known: --sizes 5,20 --trials N --only hivemind|serf --json)`);
  }
  if (options.sizes.some((n) => !Number.isInteger(n) || n < 3 || n > 64)) throw new Error('--sizes: each size must be an integer in [3, 64]');
  if (!Number.isInteger(options.trials) || options.trials < 1 || options.trials > 50) throw new Error('--trials must be in [1, 50]');
  return options;
}

/** One running member and what it has said about the others. */
interface Member {
  readonly name: string;
  child: ChildProcess;
  /** Subject → [state, time this process read it]. */
  readonly views: Map<string, { state: 'alive' | 'dead'; atMs: number }>;
}

interface SystemDriver {
  readonly name: 'hivemind' | 'serf';
  start(resources: Resources, name: string, index: number): Promise<ChildProcess>;
  /** A membership line → what it says, or undefined. */
  parse(line: string): { subject: string; state: 'alive' | 'dead' } | undefined;
}

function hivemindDriver(): SystemDriver {
  const keyHex = randomBytes(32).toString('hex');
  let seed = '';
  return {
    name: 'hivemind',
    async start(resources, name, index) {
      const child = resources.spawn({ command: process.execPath, args: [MEMBER_MAIN, '--id', name, '--key-hex', keyHex, '--seeds', seed], logPath: '/dev/null', pipeStdout: true });
      if (index === 0) {
        seed = await new Promise<string>((resolve, reject) => {
          const lines = createInterface({ input: child.stdout! });
          lines.on('line', (line) => {
            if (line.startsWith('ready ')) resolve(`127.0.0.1:${line.slice(6).trim()}`);
          });
          child.once('exit', () => reject(new Error('the first member exited')));
        });
      }
      return child;
    },
    parse(line) {
      const match = /^event (\S+) (\S+) \d+$/.exec(line);
      if (match === null) return undefined;
      if (match[1] === 'dead') return { subject: match[2]!, state: 'dead' };
      if (match[1] === 'up' || match[1] === 'alive-again') return { subject: match[2]!, state: 'alive' };
      return undefined;
    },
  };
}

async function serfDriver(size: number): Promise<SystemDriver> {
  const ports = await freePorts(size * 2);
  const encrypt = randomBytes(32).toString('base64');
  return {
    name: 'serf',
    async start(resources, name, index) {
      const args = ['agent', '-node', name, '-bind', `127.0.0.1:${ports[index]}`, '-rpc-addr', `127.0.0.1:${ports[size + index]}`, '-encrypt', encrypt, '-log-level', 'info'];
      // -join makes the agent exit when the seed is not listening yet (m1 starts right after m0, and lost that race under load).
      if (index !== 0) args.push('-retry-join', `127.0.0.1:${ports[0]}`, '-retry-interval', '1s');
      return resources.spawn({ command: 'serf', args, logPath: '/dev/null', pipeStdout: true });
    },
    parse(line) {
      const match = /serf: EventMember(Join|Failed): (\S+)/.exec(line);
      if (match === null) return undefined;
      return { subject: match[2]!, state: match[1] === 'Join' ? 'alive' : 'dead' };
    },
  };
}

function serfVersion(): string | undefined {
  try {
    return execFileSync('serf', ['version'], { encoding: 'utf8' }).split('\n')[0]?.trim();
  } catch {
    return undefined;
  }
}

interface RunResult {
  system: string;
  size: number;
  detectionMs: number[];
  undetected: number;
  falsePositives: number;
  memberCpuPercent: number;
  memberRssMiB: number;
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      process.stderr.write(`bench: timed out waiting for ${what}\n`);
      return false;
    }
    await sleep(20);
  }
  return true;
}

async function runSystem(driver: SystemDriver, size: number, trials: number): Promise<RunResult> {
  const resources = new Resources();
  const members: Member[] = [];
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  let victim: string | undefined;
  let falsePositives = 0;
  let formed = false;

  const launch = async (index: number): Promise<void> => {
    const name = names[index]!;
    const child = await driver.start(resources, name, index);
    const member: Member = members[index] ?? { name, child, views: new Map() };
    member.child = child;
    member.views.clear();
    members[index] = member;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (member.child !== child) return;
      const said = driver.parse(line);
      if (said === undefined || said.subject === name) return;
      member.views.set(said.subject, { state: said.state, atMs: performance.now() });
      if (said.state === 'dead' && formed && said.subject !== victim) {
        falsePositives += 1;
        process.stderr.write(`bench: false positive: ${name} declared ${said.subject} dead\n`);
      }
    });
  };
  const sees = (member: Member, subject: string, state: 'alive' | 'dead', sinceMs = 0): boolean => {
    const view = member.views.get(subject);
    return view !== undefined && view.state === state && view.atMs >= sinceMs;
  };

  try {
    for (let i = 0; i < size; i++) await launch(i);
    const formedInTime = await until(`${driver.name}: ${size} members to form`, () => members.every((m) => names.every((n) => n === m.name || sees(m, n, 'alive'))), CONVERGE_TIMEOUT_MS);
    if (!formedInTime) {
      // Measuring a cluster that never formed would only wait out every trial's timeout.
      const exited = members.filter((m) => m.child.exitCode !== null || m.child.signalCode !== null).map((m) => m.name);
      throw new Error(`${driver.name}: ${size} members did not form within ${CONVERGE_TIMEOUT_MS} ms (exited: ${exited.join(', ') || 'none'}; a port taken between choosing and binding?)`);
    }
    formed = true;
    const probe = members[1]!;
    const cpuStartMs = cpuTimeMs(probe.child.pid!);
    const wallStartMs = performance.now();
    await sleep(3000); // a quiet stretch, so the CPU figure is not only start-up and failure work
    const cpuEndMs = cpuTimeMs(probe.child.pid!);
    const memberCpuPercent = (100 * (cpuEndMs - cpuStartMs)) / (performance.now() - wallStartMs);
    const memberRssMiB = rssBytes(probe.child.pid!) / 2 ** 20;

    const detectionMs: number[] = [];
    let undetected = 0;
    for (let trial = 0; trial < trials; trial++) {
      const index = 2 + (trial % (size - 2)); // never the seed (0) or the measured member (1)
      const target = members[index]!;
      victim = target.name;
      const others = members.filter((m) => m !== target);
      const killedAtMs = performance.now();
      await killAndWait(target.child);
      const detected = await until(`${driver.name}: all to declare ${victim} dead`, () => others.every((m) => sees(m, victim!, 'dead', killedAtMs)), DETECTION_TIMEOUT_MS);
      if (detected) detectionMs.push(Math.max(...others.map((m) => m.views.get(victim!)!.atMs)) - killedAtMs);
      else undetected += 1;
      const restartedAtMs = performance.now();
      await launch(index);
      await until(`${driver.name}: ${victim} back`, () => others.every((m) => sees(m, victim!, 'alive', restartedAtMs)) && names.every((n) => n === victim || sees(target, n, 'alive')), CONVERGE_TIMEOUT_MS);
      await sleep(1500);
      victim = undefined;
    }
    return { system: driver.name, size, detectionMs, undetected, falsePositives, memberCpuPercent, memberRssMiB };
  } finally {
    resources.cleanup();
    await sleep(500);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function format(result: RunResult): string {
  const seconds = result.detectionMs.map((ms) => (ms / 1000).toFixed(2));
  return (
    `  ${result.system.padEnd(8)} n=${String(result.size).padEnd(3)} detection median ${(median(result.detectionMs) / 1000).toFixed(2)} s, max ${(Math.max(...result.detectionMs) / 1000).toFixed(2)} s` +
    ` [${seconds.join(', ')}]${result.undetected ? `, ${result.undetected} undetected` : ''}; false positives ${result.falsePositives};` +
    ` member CPU ${result.memberCpuPercent.toFixed(1)} %, RSS ${result.memberRssMiB.toFixed(1)} MiB`
  );
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const serf = serfVersion();
  const o = defaultSwimOptions;
  console.log('membership benchmark: kill -9 of one member -> every other member declares it dead');
  console.log(`  machine   ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; load ${loadavg()[0]!.toFixed(2)} at start; node ${process.version}`);
  console.log(`  hivemind  probe ${o.probeIntervalMs} ms, timeout ${o.probeTimeoutMs} ms, k=${o.indirectChecks}, suspicion ${o.suspicionMultiplier} x max(1, log10 n) periods (x${o.suspicionMaxMultiplier} until ${o.suspicionConfirmationsExpected} confirmations), AES-256-GCM`);
  console.log(`  serf      ${serf ?? 'not installed (no serf rows)'}${serf ? ', default LAN profile, -encrypt on' : ''}`);
  console.log(`  sizes ${options.sizes.join(', ')}; ${options.trials} trials each; loopback\n`);
  const results: RunResult[] = [];
  for (const size of options.sizes) {
    for (const system of options.systems) {
      if (system === 'serf' && serf === undefined) continue;
      const driver = system === 'serf' ? await serfDriver(size) : hivemindDriver();
      const result = await runSystem(driver, size, options.trials);
      results.push(result);
      console.log(format(result));
    }
    const ours = results.find((r) => r.system === 'hivemind' && r.size === size);
    const theirs = results.find((r) => r.system === 'serf' && r.size === size);
    if (ours && theirs) console.log(`  n=${size}: hivemind / serf detection (medians) = ${(median(ours.detectionMs) / median(theirs.detectionMs)).toFixed(2)} (target <= 0.5)`);
  }
  if (options.json) {
    const summary = results.map((r) => ({
      system: r.system,
      size: r.size,
      detectionMsMedian: Math.round(median(r.detectionMs)),
      detectionMsMax: Math.round(Math.max(...r.detectionMs)),
      detectionMs: r.detectionMs.map(Math.round),
      undetected: r.undetected,
      falsePositives: r.falsePositives,
      memberCpuPercent: Number(r.memberCpuPercent.toFixed(2)),
      memberRssMiB: Number(r.memberRssMiB.toFixed(1)),
    }));
    const ratios: Record<string, number> = {};
    for (const size of options.sizes) {
      const ours = results.find((r) => r.system === 'hivemind' && r.size === size);
      const theirs = results.find((r) => r.system === 'serf' && r.size === size);
      if (ours && theirs) ratios[String(size)] = Number((median(ours.detectionMs) / median(theirs.detectionMs)).toFixed(3));
    }
    console.log(JSON.stringify({ benchmark: 'membership', trials: options.trials, serf: serf ?? null, results: summary, ratioBySize: ratios }));
  }
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
