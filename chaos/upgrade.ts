/**
 * `npm run chaos:upgrade [-- --from COMMIT] [--previous-build DIR] [--nodes N] [--step-seconds S] [--snapshot-every E] [--keep]`:
 * a rolling upgrade from the previous release to this build, under load, the
 * way docs/operations.md prescribes it, checking that the replicas never
 * diverge (src/state/version.ts).
 *
 * 1. Builds the previous release: `git worktree add --detach` of COMMIT in a
 *    temporary folder, node_modules linked, `npx tsc -b` (or takes the build
 *    in `--previous-build DIR`). COMMIT by default: the parent of the commit
 *    that set this build's STATE_VERSION.
 * 2. Starts N agents of that build on loopback (the test harness's nodes),
 *    deploys a process app, and keeps clients writing config keys through
 *    every node and scaling the app.
 * 3. Upgrades one node at a time, followers first and the leader last:
 *    SIGTERM, start this build on the same data directory, wait until it
 *    serves and has caught up, run the load for S seconds. After each
 *    stop, the node's state hash at its commit index (and at the earlier
 *    checkpoints' that its storage still covers) is taken with the code it
 *    ran (a checkpoint). The cluster version must stay at the previous
 *    release's until the last node runs this build, and every node must keep
 *    running (none stops at an entry it cannot apply).
 * 4. Once all are upgraded, the leader must raise the cluster version
 *    (a `cluster.version` entry); the load runs on in the new version.
 * 5. Stops the load; every key must read back its last acknowledged value
 *    (or a later write whose outcome was unknown). Stops the nodes and
 *    computes, from each node's own Raft storage (its latest snapshot, made
 *    by whichever build ran it, and its log), the state hash at one common
 *    index, and at each checkpoint's index where that node's log still
 *    covers it (with both builds' state machines): all must be equal.
 * 6. Starts the previous build on one node's data (a downgrade): it must
 *    stop at the first entry of the new version with the gate's message, or
 *    earlier, refusing a storage layout it cannot read (this release stores
 *    snapshots in chunks, which the previous one does not know).
 *
 * Exit status 0 when every check passed, 1 on a violation, 2 when the run
 * could not be made. Loopback only; no namespaces, no root. Not in `npm test`
 * (a few minutes, most of it the previous release's build).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LevelStorage } from '../consensus/storage-level.js';
import { EntryType } from '../consensus/core/types.js';
import { decodeEnvelope } from '../src/node/replicated-state.js';
import { DataDir } from '../src/node/data-dir.js';
import { TestCluster, eventually, killWorkloadsUnder, sleep, type TestNode } from '../src/agent/test/harness.js';
import { CLUSTER_VERSION_FLOOR, STATE_VERSION } from '../src/state/version.js';

const repositoryRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const HELLO = readFileSync(join(repositoryRoot, 'examples/hello.yaml'), 'utf8');

/** Client loops writing config keys; each owns its keys, so its last write of a key is the key's value. */
const WRITERS = 3;
/** Keys per writer. */
const KEYS_PER_WRITER = 4;
/** A write's time limit; past it the outcome is unknown. */
const WRITE_TIMEOUT_MS = 5000;
/** How long a restarted node may take to serve and catch up. */
const CATCH_UP_TIMEOUT_MS = 60_000;
/** How long the leader may take to raise the cluster version once every node runs this build. */
const RAISE_TIMEOUT_MS = 30_000;

interface Options {
  from: string | undefined;
  previousBuild: string | undefined;
  nodes: number;
  stepSeconds: number;
  /** The agents' --snapshot-every: low enough that the previous build's snapshots are restored by this one, high enough that the logs still cover most checkpoints. */
  snapshotEvery: number;
  keep: boolean;
}

/** The state machine of one build, loaded from its dist folder. */
interface MachineModule {
  ClusterStateMachine: {
    new (): { apply(index: number, envelope: unknown): unknown; snapshot(): Uint8Array; restore(data: Uint8Array): void; readonly appliedIndex: number };
  };
}

/** State hashes by index, then by who computed them ("u2 (previous build)"). */
class Observations {
  readonly byIndex = new Map<number, Map<string, string>>();

  add(index: number, who: string, hash: string): void {
    const hashes = this.byIndex.get(index) ?? new Map<string, string>();
    hashes.set(who, hash);
    this.byIndex.set(index, hashes);
  }

  /** Adds `node`'s hash (computed with `machines`, named `build`) at each index seen so far that its storage covers, and at its commit index. */
  async observe(node: TestNode, build: string, machines: MachineModule): Promise<number | undefined> {
    for (const index of [...this.byIndex.keys()]) {
      const computed = await stateHashAt(node.dataDir, index, machines);
      if (computed !== undefined) this.add(index, `${node.name} (${build})`, computed.hash);
    }
    const own = await stateHashAt(node.dataDir, 'commit', machines);
    if (own !== undefined) this.add(own.index, `${node.name} (${build})`, own.hash);
    return own?.index;
  }
}

/** What one key's writer knows: the last acknowledged value, and the later writes whose outcome is unknown. */
interface KeyRecord {
  acknowledged: string | undefined;
  unknown: string[];
}

class Violation extends Error {}

function parseOptions(args: string[]): Options {
  const options: Options = { from: undefined, previousBuild: undefined, nodes: 3, stepSeconds: 8, snapshotEvery: 2000, keep: false };
  for (let position = 0; position < args.length; position++) {
    const flag = args[position];
    const value = (): string => {
      const next = args[++position];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--from') options.from = value();
    else if (flag === '--previous-build') options.previousBuild = resolve(value());
    else if (flag === '--nodes') options.nodes = Number(value());
    else if (flag === '--step-seconds') options.stepSeconds = Number(value());
    else if (flag === '--snapshot-every') options.snapshotEvery = Number(value());
    else if (flag === '--keep') options.keep = true;
    else throw new Error(`unknown option ${flag}; see the comment at the top of chaos/upgrade.ts`);
  }
  if (!Number.isInteger(options.nodes) || options.nodes < 2 || options.nodes > 5) throw new Error('--nodes must be a whole number from 2 to 5');
  if (!(options.stepSeconds > 0)) throw new Error('--step-seconds must be positive');
  if (!Number.isInteger(options.snapshotEvery) || options.snapshotEvery < 1) throw new Error('--snapshot-every must be a whole number from 1');
  return options;
}

function git(args: string[]): string {
  return execFileSync('git', args, { cwd: repositoryRoot, encoding: 'utf8' }).trim();
}

/** The previous release: the parent of the commit that set this build's STATE_VERSION. */
function defaultPreviousCommit(): string {
  const introducing = git(['log', '-1', '--format=%H', `-Sexport const STATE_VERSION = ${STATE_VERSION};`, '--', 'src/state/version.ts']);
  if (introducing === '') throw new Error(`no commit sets STATE_VERSION = ${STATE_VERSION}; give --from COMMIT`);
  return git(['rev-parse', `${introducing}^`]);
}

/** Builds `commit` in a worktree under `folder`; returns the build's root and how to remove it. */
function buildPrevious(commit: string, folder: string): { root: string; remove: () => void } {
  const root = join(folder, 'previous');
  console.log(`building the previous release ${commit.slice(0, 12)} in ${root} (git worktree, npx tsc -b)`);
  git(['worktree', 'add', '--detach', root, commit]);
  const remove = (): void => {
    try {
      git(['worktree', 'remove', '--force', root]);
    } catch {
      rmSync(root, { recursive: true, force: true });
      git(['worktree', 'prune']);
    }
  };
  try {
    symlinkSync(realpathSync(join(repositoryRoot, 'node_modules')), join(root, 'node_modules'));
    const started = Date.now();
    execFileSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' });
    console.log(`  built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } catch (error) {
    remove();
    throw error;
  }
  return { root, remove };
}

async function loadMachine(buildRoot: string): Promise<MachineModule> {
  return (await import(pathToFileURL(join(buildRoot, 'dist/src/state/machine.js')).href)) as MachineModule;
}

/**
 * The state hash of the node whose data is in `dataDirectory` at `index`
 * (undefined when its storage no longer covers it: compacted past, or not
 * committed there), computed with `machines`' code from the node's own
 * latest snapshot and log. The node must be stopped (LevelDB's lock).
 */
async function stateHashAt(dataDirectory: string, index: number | 'commit', machines: MachineModule): Promise<{ index: number; hash: string } | undefined> {
  const storage = new LevelStorage({ directory: new DataDir(dataDirectory).raftPath });
  await storage.open();
  try {
    const persisted = await storage.load();
    const target = index === 'commit' ? persisted.hardState.commit : index;
    const snapshotIndex = persisted.snapshot?.meta.index ?? 0;
    if (target < snapshotIndex || target > persisted.hardState.commit) return undefined;
    const machine = new machines.ClusterStateMachine();
    if (persisted.snapshot !== undefined) machine.restore(persisted.snapshot.data);
    for (const entry of persisted.entries) {
      if (entry.index > target) break;
      if (entry.type === EntryType.Normal && entry.data.length > 0) machine.apply(entry.index, decodeEnvelope(entry.data));
    }
    return { index: target, hash: createHash('sha256').update(machine.snapshot()).digest('hex').slice(0, 16) };
  } finally {
    await storage.close();
  }
}

/** Starts `main.js` of `buildRoot` for `node`: `agent` (a member restarts from its data directory). */
function startWith(node: TestNode, buildRoot: string, command: string[]): void {
  node.start(command, [], join(buildRoot, 'dist/src/agent/main.js'));
}

/**
 * Whether `node`'s replica holds a cluster version above the previous
 * release's (`GET /v1/status`). Not from the history: under load a
 * thousand newer entries push the raise out of it within seconds.
 */
async function clusterVersionRaised(node: TestNode): Promise<boolean> {
  const answer = await node.request('GET', '/v1/status?stale=true');
  if (answer.status !== 200) throw new Error(`status from ${node.name}: ${answer.status}`);
  return (answer.body as { clusterVersion: number }).clusterVersion >= STATE_VERSION;
}

/** The clients: writers of config keys and a scaler of the app, through whichever nodes run. */
class Load {
  readonly keys = new Map<string, KeyRecord>();
  writes = { acknowledged: 0, refused: 0, unknown: 0 };
  scales = { acknowledged: 0, failed: 0 };
  readonly refusals: string[] = [];
  #running = true;
  #loops: Promise<void>[] = [];

  constructor(private readonly cluster: TestCluster) {}

  start(): void {
    for (let writer = 0; writer < WRITERS; writer++) this.#loops.push(this.#write(writer));
    this.#loops.push(this.#scale());
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }

  #pick(position: number): TestNode | undefined {
    const running = this.cluster.running();
    return running[position % Math.max(running.length, 1)];
  }

  async #write(writer: number): Promise<void> {
    for (let sequence = 0; this.#running; sequence++) {
      const key = `upgrade/w${writer}-k${sequence % KEYS_PER_WRITER}`;
      const value = `${writer}.${sequence}`;
      const record = this.keys.get(key) ?? { acknowledged: undefined, unknown: [] };
      this.keys.set(key, record);
      const node = this.#pick(writer + sequence);
      if (node === undefined) {
        await sleep(100);
        continue;
      }
      try {
        const answer = await node.request('PUT', `/v1/kv/${key}`, { value }, { timeoutMs: WRITE_TIMEOUT_MS });
        if (answer.status === 200) {
          record.acknowledged = value;
          record.unknown = [];
          this.writes.acknowledged++;
        } else if (answer.status >= 400 && answer.status < 500) {
          this.writes.refused++;
          this.refusals.push(`${node.name}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
        } else {
          record.unknown.push(value);
          this.writes.unknown++;
        }
      } catch {
        record.unknown.push(value);
        this.writes.unknown++;
      }
    }
  }

  async #scale(): Promise<void> {
    for (let sequence = 0; this.#running; sequence++) {
      await sleep(1500);
      const node = this.#pick(sequence);
      if (node === undefined) continue;
      try {
        const answer = await node.request('POST', '/v1/apps/default/hello/scale', { replicas: 1 + (sequence % 3) }, { timeoutMs: WRITE_TIMEOUT_MS });
        if (answer.status === 200) this.scales.acknowledged++;
        else this.scales.failed++;
      } catch {
        this.scales.failed++;
      }
    }
  }
}

async function bootstrapWith(cluster: TestCluster, name: string, buildRoot: string): Promise<TestNode> {
  const node = await cluster.add(name);
  startWith(node, buildRoot, ['agent']);
  cluster.token = await eventually(`${name} to print its join token`, () => {
    if (!node.running) throw new Error(`${name} exited: ${node.stderr.slice(-5).join(' | ')}`);
    const line = node.stdout.find((text) => text.startsWith('join token: '));
    return line?.slice('join token: '.length).trim();
  }, 30_000, 50);
  await node.waitHealthy(30_000);
  return node;
}

async function joinWith(cluster: TestCluster, name: string, seed: TestNode, buildRoot: string): Promise<TestNode> {
  const node = await cluster.add(name);
  startWith(node, buildRoot, ['join', seed.peerAddress, '--token', cluster.token]);
  await node.waitHealthy(30_000);
  return node;
}

/** Waits until `node` serves and has applied what the leader had committed when it came back. */
async function waitCaughtUp(cluster: TestCluster, node: TestNode): Promise<void> {
  await node.waitHealthy(CATCH_UP_TIMEOUT_MS);
  const leader = await cluster.leader();
  const commit = (await leader.status()).commit as number;
  await eventually(`${node.name} to catch up to ${commit}`, async () => ((await node.status()).applied as number) >= commit, CATCH_UP_TIMEOUT_MS, 200);
}

function checkAllRunning(cluster: TestCluster): void {
  for (const node of cluster.nodes.values()) {
    if (!node.running) throw new Violation(`node ${node.name} stopped by itself:\n${node.logTail(20)}`);
  }
}

async function run(options: Options): Promise<void> {
  const folder = mkdtempSync(join(tmpdir(), 'hivemind-upgrade-'));
  let previous: { root: string; remove: () => void } | undefined;
  const cluster = new TestCluster(100, ['--snapshot-every', String(options.snapshotEvery)]);
  try {
    if (options.previousBuild !== undefined) {
      if (!existsSync(join(options.previousBuild, 'dist/src/agent/main.js'))) throw new Error(`${options.previousBuild} holds no build (dist/src/agent/main.js)`);
      previous = { root: options.previousBuild, remove: () => {} };
      console.log(`the previous release: the build in ${options.previousBuild}`);
    } else {
      previous = buildPrevious(options.from ?? defaultPreviousCommit(), folder);
    }
    const previousMachine = await loadMachine(previous.root);
    const thisMachine = await loadMachine(resolve(repositoryRoot));
    console.log(`${options.nodes} nodes on loopback, tick 100 ms, a snapshot every ${options.snapshotEvery} entries; ${options.stepSeconds} s of load after each node's upgrade; this build's state version ${STATE_VERSION}`);

    const names = Array.from({ length: options.nodes }, (_, position) => `u${position + 1}`);
    const first = await bootstrapWith(cluster, names[0]!, previous.root);
    for (const name of names.slice(1)) await joinWith(cluster, name, first, previous.root);
    await eventually('every node a voter', async () => (await first.status()).voters.length === Math.min(options.nodes, 5), 60_000);
    const deployed = await first.request('POST', '/v1/deploy', { fileName: 'hello.yaml', content: HELLO });
    if (deployed.status !== 200) throw new Error(`deploy: ${deployed.status} ${JSON.stringify(deployed.body)}`);
    console.log(`cluster of the previous release up (${names.join(', ')}), hello deployed; load starts`);

    const load = new Load(cluster);
    load.start();
    await sleep(options.stepSeconds * 1000);
    const observations = new Observations();
    const leader = await cluster.leader();
    const order = [...cluster.nodes.values()].filter((node) => node !== leader);
    order.push(leader);
    for (const [position, node] of order.entries()) {
      checkAllRunning(cluster);
      await node.stop();
      const checkpoint = await observations.observe(node, 'previous build', previousMachine);
      startWith(node, resolve(repositoryRoot), ['agent']);
      await waitCaughtUp(cluster, node);
      console.log(`  ${node.name} upgraded (${position + 1} of ${order.length}); its state hash taken with the previous build at ${checkpoint} and at the indexes before it that its storage covers`);
      await sleep(options.stepSeconds * 1000);
      checkAllRunning(cluster);
      const raised = await clusterVersionRaised(await cluster.leader());
      if (position < order.length - 1 && raised) throw new Violation(`the cluster version was raised while ${order.length - 1 - position} node(s) still ran the previous release`);
    }
    const newLeader = await cluster.leader();
    const raisedIn = Date.now();
    await eventually('the cluster version raised', () => clusterVersionRaised(newLeader), RAISE_TIMEOUT_MS, 250).catch(() => {
      throw new Violation(`the cluster version was not raised within ${RAISE_TIMEOUT_MS / 1000} s of the last upgrade`);
    });
    console.log(`every node runs this build; the cluster version went from ${CLUSTER_VERSION_FLOOR} to ${STATE_VERSION} within ${((Date.now() - raisedIn) / 1000).toFixed(1)} s; load goes on`);
    await sleep(options.stepSeconds * 1000);
    await load.stop();
    checkAllRunning(cluster);
    console.log(`load: ${load.writes.acknowledged} writes acknowledged, ${load.writes.unknown} of unknown outcome, ${load.writes.refused} refused; ${load.scales.acknowledged} scales acknowledged, ${load.scales.failed} failed`);
    if (load.writes.refused > 0) throw new Violation(`writes were refused:\n  ${load.refusals.slice(0, 5).join('\n  ')}`);

    const reader = await cluster.leader();
    for (const [key, record] of load.keys) {
      const answer = await reader.request('GET', `/v1/kv/${key}`);
      const value = answer.status === 200 ? (answer.body.value as string) : undefined;
      const allowed = [record.acknowledged, ...record.unknown];
      if (!allowed.includes(value)) throw new Violation(`key ${key} reads ${JSON.stringify(value)}, not its last acknowledged write ${JSON.stringify(record.acknowledged)} or a later one`);
    }
    console.log(`${load.keys.size} keys read back their last acknowledged write (or a later one of unknown outcome)`);

    for (const node of cluster.nodes.values()) await node.stop();
    // Each checkpoint (all before the raise) again from every node's final storage, with both builds: the same state either way.
    const checkpointIndexes = [...observations.byIndex.keys()];
    for (const node of cluster.nodes.values()) {
      for (const index of checkpointIndexes) {
        for (const [build, machines] of [['previous build', previousMachine], ['this build', thisMachine]] as const) {
          const computed = await stateHashAt(node.dataDir, index, machines);
          if (computed !== undefined) observations.add(index, `${node.name} (${build}, after)`, computed.hash);
        }
      }
    }
    const commits: number[] = [];
    for (const node of cluster.nodes.values()) {
      const own = await observations.observe(node, 'this build', thisMachine);
      if (own === undefined) throw new Violation(`node ${node.name}'s storage does not cover its own commit index`);
      commits.push(own);
    }
    const common = Math.min(...commits);
    for (const node of cluster.nodes.values()) {
      const computed = await stateHashAt(node.dataDir, common, thisMachine);
      if (computed === undefined) throw new Violation(`node ${node.name}'s storage does not cover index ${common}, which every node committed`);
      observations.add(common, `${node.name} (this build)`, computed.hash);
    }
    let compared = 0;
    for (const index of [...observations.byIndex.keys()].sort((left, right) => left - right)) {
      const hashes = observations.byIndex.get(index)!;
      const line = [...hashes].map(([who, hash]) => `${who} ${hash}`).join(', ');
      console.log(`  state hashes at index ${index}: ${line}`);
      if (new Set(hashes.values()).size > 1) throw new Violation(`the replicas diverged at index ${index}: ${line}`);
      if (new Set([...hashes.keys()].map((who) => who.split(' ')[0])).size >= 2) compared++;
    }

    // A downgrade: the previous build on an upgraded node's data must stop, saying why: at the first entry of the
    // new version (the gate), or, when this build also changed the storage's layout (snapshots in chunks since
    // issue 23), already when it loads the storage it cannot read. Either way it applies nothing.
    const downgraded = [...cluster.nodes.values()][options.nodes - 1]!;
    startWith(downgraded, previous.root, ['agent']);
    const exitCode = await downgraded.waitExit(60_000).catch(() => undefined);
    const output = [...downgraded.stderr, ...downgraded.stdout];
    const said =
      output.find((line) => line.includes(`written by a Hivemind of state version ${STATE_VERSION}`)) ??
      output.find((line) => line.includes('cannot load Raft storage'));
    if (exitCode === undefined || exitCode === 0 || said === undefined) {
      throw new Violation(`the previous build started on ${downgraded.name}'s data did not stop at an entry of state version ${STATE_VERSION} nor at loading its storage (exit ${String(exitCode)}):\n${downgraded.logTail(10)}`);
    }
    console.log(`the previous build on ${downgraded.name}'s data stops (exit ${exitCode}): ${said.trim().slice(0, 220)}`);
    console.log(`OK: no replica diverged (${compared} indexes compared across nodes, the last at ${common}); no node stopped; the cluster version was raised only after the last upgrade; a downgraded node stops`);
  } catch (error) {
    console.error(cluster.logs());
    throw error;
  } finally {
    await cluster.cleanup();
    killWorkloadsUnder(folder);
    if (!options.keep) {
      previous?.remove();
      rmSync(folder, { recursive: true, force: true });
    } else console.log(`kept ${folder}`);
  }
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`chaos:upgrade: ${(error as Error).message}`);
    process.exit(2);
  }
  try {
    await run(options);
    process.exit(0);
  } catch (error) {
    if (error instanceof Violation) {
      console.error(`VIOLATION: ${error.message}`);
      process.exit(1);
    }
    console.error(`chaos:upgrade could not complete: ${(error as Error).stack ?? String(error)}`);
    process.exit(2);
  }
}

await main();
