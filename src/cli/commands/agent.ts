/**
 * `agent`, `join`, `recover`: run a node, or repair one. The flags are
 * handed to src/agent's `resolveConfig` as typed (it validates them and
 * names the flag or variable at fault); only flags given on the command line
 * are passed as flags, so a value from HIVEMIND_* is reported under its
 * variable's name. The agent's modules load only when one of these commands
 * runs, so every other command starts fast.
 */
import { Option, type Command } from 'commander';
import type { StartMode } from '../../agent/agent.js';
import type { AgentConfig, AgentFlags } from '../../node/config.js';
import { CliError, ExitCode, ExitRequest, UsageError } from '../errors.js';
import { rootOf } from '../program-root.js';

/** The agent's own flags: commander attribute, flag, value name, environment variable, help. */
const agentFlags: [keyof AgentFlags, string, string][] = [
  ['name', '--name <name>', "the node's name in the cluster (default: the host name)"],
  ['bind', '--bind <ip>', 'the address to listen on (default: 0.0.0.0)'],
  ['advertise', '--advertise <host>', 'the address other nodes reach this one at (default: the bind address, else the first external IPv4)'],
  ['apiPort', '--api-port <port>', 'HTTP API port (default: 7070; 0 picks a free one)'],
  ['peerPort', '--peer-port <port>', 'peer gRPC port, Raft and joins (default: 7071)'],
  ['gossipPort', '--gossip-port <port>', 'gossip UDP port (default: 7072)'],
  ['dnsPort', '--dns-port <port>', 'DNS UDP port (default: 7053)'],
  ['proxyPort', '--proxy-port <port>', 'HTTP proxy port (default: 7080)'],
  ['voterGrace', '--voter-grace <duration>', 'how long a voter may be unreachable before another node replaces it (default: 30s)'],
  ['tickMs', '--tick-ms <ms>', 'the length of a Raft tick; elections time out after 10 to 20 ticks (default: 50)'],
  ['snapshotEvery', '--snapshot-every <entries>', 'applied log entries between snapshots (default: 10000)'],
  ['rescheduleGrace', '--reschedule-grace <duration>', 'how long the instances of a node marked down wait before they are moved (default: 30s)'],
  ['progressDeadline', '--progress-deadline <duration>', 'how long an update may go without progress before its failure action runs (default: 10m)'],
  ['serviceCidr', '--service-cidr <cidr>', 'the range of service VIPs, fixed by the first leader (default: 10.211.0.0/16; apart from the cluster network)'],
  ['tenantNetworkCidr', '--tenant-network-cidr <cidr>', "the pool tenant networks' blocks come from, fixed by the first leader once every node runs state version 5 (default: 10.224.0.0/12; apart from the cluster network and the service range)"],
  ['networkDetachGrace', '--network-detach-grace <duration>', 'how long a node keeps a slice of a tenant network that none of its instances uses before the leader gives it back (default: 60s)'],
  ['tenantNetworks', '--tenant-networks <on|off|tenants>', "no longer needed (a warning says so): once every node runs this release, every node puts containers on their tenant's networks and it is ignored; until then, whose containers this node puts there: on, off (default) or tenant names"],
  ['warmNetworks', '--warm-networks <count>', 'network namespaces kept attached and ready for containers, so a start skips making its own (default: 16; 0 turns the pool off)'],
  ['metricsPublic', '--metrics-public <on|off>', 'serve GET /metrics without a token, for a Prometheus that has none (default: off: /metrics needs a token like any read)'],
  ['insecureApi', '--insecure-api <on|off>', 'serve the API over plain HTTP instead of HTTPS: the token and secrets then cross the network in clear; every node of a cluster must use the same (default: off)'],
  ['otlpEndpoint', '--otlp-endpoint <url>', 'send traces over OTLP/HTTP to this collector, such as http://127.0.0.1:4318 (default: none, tracing off)'],
  ['logLevel', '--log-level <level>', 'the least severe log lines written: debug, info, warn or error (default: info); logs are JSON lines unless stderr is a terminal'],
  ['discoverable', '--discoverable <on|off>', 'announce this node on the public hyperswarm DHT under a topic derived from the join token, so `hivemind join --discover` finds it (default: off)'],
];

function environmentName(flag: string): string {
  const long = flag.split(' ')[0] ?? flag;
  return `HIVEMIND_${long.slice(2).replace(/-/g, '_').toUpperCase()}`;
}

function addAgentFlags(command: Command): Command {
  for (const [, flags, description] of agentFlags) {
    const option = new Option(flags, description).env(environmentName(flags));
    if (/^--(voter-grace|tick-ms|snapshot-every|reschedule-grace|progress-deadline|warm-networks)/.test(flags)) option.helpGroup('Tuning:');
    command.addOption(option);
  }
  // Repeatable; joined with commas for resolveConfig, as HIVEMIND_LABELS is written.
  command.addOption(
    new Option('--label <key=value>', "a label of this node, read by placement constraints (node.labels.KEY == VALUE); repeatable; HIVEMIND_LABELS takes KEY=VALUE,KEY=VALUE")
      .argParser((value: string, previous: string | undefined) => (previous === undefined ? value : `${previous},${value}`)),
  );
  return command.addHelpText(
    'after',
    '\nThe data directory (--data-dir, HIVEMIND_DATA_DIR, default ./.hivemind) and the join token (--token, HIVEMIND_TOKEN) are global flags.',
  );
}

/**
 * The flags typed on the command line, for `resolveConfig`. Values commander
 * took from the environment are left out: `resolveConfig` reads the
 * environment itself and names the variable when its value is wrong.
 */
function typedFlags(command: Command): AgentFlags {
  const flags: AgentFlags = {};
  const own = command.opts<Record<string, string | undefined>>();
  for (const [key] of agentFlags) {
    const value = own[key];
    if (value !== undefined && command.getOptionValueSource(key) === 'cli') flags[key] = value;
  }
  if (own.label !== undefined && command.getOptionValueSource('label') === 'cli') flags.labels = own.label;
  const root = rootOf(command);
  const global = root.opts<{ dataDir?: string; token?: string }>();
  if (global.dataDir !== undefined && root.getOptionValueSource('dataDir') === 'cli') flags.dataDir = global.dataDir;
  if (global.token !== undefined && root.getOptionValueSource('token') === 'cli') flags.token = global.token;
  return flags;
}

/** Resolves the configuration, or throws a usage error listing every invalid setting. */
async function resolve(command: Command): Promise<AgentConfig> {
  const { resolveConfig, currentSystem } = await import('../../node/config.js');
  const resolved = resolveConfig(typedFlags(command), process.env, currentSystem());
  if (resolved.ok) {
    for (const warning of resolved.warnings) process.stderr.write(`hivemind: warning: ${warning}\n`);
    return resolved.config;
  }
  const [first, ...rest] = resolved.problems.map((problem) => `invalid setting: ${problem.message}`);
  throw new CliError(first ?? 'invalid settings', { exitCode: ExitCode.usage, details: rest.map((line) => `hivemind: ${line}`) });
}

/** Finds a seed through hyperswarm by the join token (`join --discover`). */
async function discover(token: string): Promise<string> {
  const { discoverSeed, DiscoveryError, parseBootstrapList } = await import('../../membership/discovery.js');
  const parsed = parseBootstrapList(process.env.HIVEMIND_DISCOVERY_BOOTSTRAP);
  if (!parsed.ok) throw new UsageError(parsed.problem);
  const bootstrap = parsed.nodes;
  process.stderr.write('looking for a member of the cluster by its join token (hyperswarm)...\n');
  try {
    const seed = await discoverSeed({ token, ...(bootstrap === undefined ? {} : { bootstrap }) });
    process.stderr.write(`found a member at ${seed}\n`);
    return seed;
  } catch (error) {
    if (error instanceof DiscoveryError) throw new CliError(`cannot join by discovery: ${error.message}`);
    throw error;
  }
}

/** Adds `agent`, `join` and `recover` to `program`. */
export function registerAgentCommands(program: Command): void {
  addAgentFlags(
    program
      .command('agent')
      .description('start a node: a new cluster of one on first start, or the node it was before on a restart'),
  )
    .option('--deploy <file>', 'once the node serves, deploy this app file (as `hivemind deploy -f FILE` would)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  hivemind agent                                # a new cluster; prints the join token',
        '  hivemind agent --deploy examples/hello.yaml   # and deploy an app file once it serves',
        '  hivemind agent --data-dir /var/lib/hivemind --advertise 10.0.0.1',
        '  HIVEMIND_API_PORT=8070 hivemind agent',
      ].join('\n'),
    )
    .action(async (options: { deploy?: string }, command: Command) => {
      const config = await resolve(command);
      if (options.deploy !== undefined && config.ports.api === 0) {
        throw new UsageError('--deploy needs a fixed --api-port (not 0)');
      }
      const running = runNode(config, 'bootstrap-or-restart');
      if (options.deploy !== undefined) void deployWhenServing(config, options.deploy);
      await running;
    });

  addAgentFlags(
    program
      .command('join')
      .description('start a node that joins an existing cluster through one of its members')
      .argument('[seed]', "a member's address, host:port (its peer port, default 7071); leave out with --discover")
      .option('--discover', 'find a member by the join token over hyperswarm (for a node that knows no seed address)'),
  )
    .addHelpText(
      'after',
      [
        '',
        'The token is the cluster\'s join token: `hivemind token` on a member prints it.',
        '',
        'Examples:',
        '  hivemind join 10.0.0.1:7071 --token hm1.abc...',
        '  HIVEMIND_TOKEN=hm1.abc... hivemind join 10.0.0.1 --advertise 10.0.0.2',
        '  hivemind join --discover --token hm1.abc...     # finds a member by the token (hyperswarm)',
        '',
        'With --discover, HIVEMIND_DISCOVERY_BOOTSTRAP=host:port[,host:port] names the DHT bootstrap nodes',
        '(default: hyperswarm\'s public ones).',
      ].join('\n'),
    )
    .action(async (seedArgument: string | undefined, options: { discover?: boolean }, command: Command) => {
      const config = await resolve(command);
      if (config.token === undefined) throw new UsageError('joining needs the join token: pass --token or set HIVEMIND_TOKEN (`hivemind token` on a member prints it)');
      if (options.discover && seedArgument !== undefined) throw new UsageError('give a seed address or --discover, not both');
      if (!options.discover && seedArgument === undefined) throw new UsageError('joining needs a seed address (a member\'s host:port) or --discover');
      const seed = seedArgument ?? (await discover(config.token));
      await runNode(config, { join: seed });
    });

  program
    .command('recover')
    .description("make this stopped node a cluster of one, keeping its state, after the cluster lost its quorum for good")
    .option('--force-new-cluster', 'required: confirms that the other nodes are gone and must rejoin with empty data directories')
    .option('--name <name>', "this node's name, as a check (default: the name in the data directory)")
    .addHelpText(
      'after',
      [
        '',
        'Run it on one surviving node while its agent is stopped, then start the agent again.',
        'Entries this node had but the cluster never committed become committed; entries it never',
        'received are lost. Wipe the other nodes\' data directories and `hivemind join` them again.',
        '',
        'Example:',
        '  hivemind recover --force-new-cluster --data-dir /var/lib/hivemind',
      ].join('\n'),
    )
    .action(async (options: { forceNewCluster?: boolean; name?: string }, command: Command) => {
      if (!options.forceNewCluster) {
        throw new UsageError('recover rewrites this node\'s log to make it a cluster of one; pass --force-new-cluster to confirm (see `hivemind recover --help`)');
      }
      const dataDir = rootOf(command).opts<{ dataDir: string }>().dataDir;
      const { recover } = await import('../../agent/recover.js');
      const { DataDirError } = await import('../../node/data-dir.js');
      let outcome: Awaited<ReturnType<typeof recover>>;
      try {
        outcome = await recover({ dataDir, ...(options.name === undefined ? {} : { name: options.name }) });
      } catch (error) {
        if (error instanceof DataDirError) throw new CliError(error.message);
        throw error;
      }
      const others = outcome.previousMembers.filter((member) => member !== outcome.name);
      process.stdout.write(
        [
          `node ${outcome.name} is now a cluster of one (configuration at index ${outcome.index}, term ${outcome.term})`,
          `${outcome.entriesNewlyCommitted} entries that were not known committed now are`,
          others.length === 0 ? '' : `the other former members (${others.join(', ')}) must be wiped and joined again: hivemind join <this node> --token ...`,
          'start the agent on this node now: hivemind agent',
        ]
          .filter((line) => line !== '')
          .join('\n') + '\n',
      );
    });
}

/** How long `agent --deploy` waits for the new node to serve. */
const DEPLOY_AFTER_START_WAIT_MS = 60_000;

/**
 * `agent --deploy FILE`: once the node answers on its API port, runs this
 * CLI's own `deploy -f FILE` against it (with the token from the data
 * directory), so the deploy prints and fails exactly as a typed one would.
 * A failed deploy is reported; the node keeps running.
 */
async function deployWhenServing(config: AgentConfig, file: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const { setTimeout: sleep } = await import('node:timers/promises');
  const { fetch } = await import('undici');
  const { dataDirApiAgent } = await import('../../api/tls.js');
  const address = `${config.insecureApi ? 'http' : 'https'}://127.0.0.1:${config.ports.api}`;
  const deadline = Date.now() + DEPLOY_AFTER_START_WAIT_MS;
  for (;;) {
    try {
      // Over HTTPS, trusting the CA in the data directory (absent until the node has it: not serving yet).
      const dispatcher = config.insecureApi ? undefined : dataDirApiAgent(config.dataDir);
      const answer = await fetch(`${address}/v1/health`, { signal: AbortSignal.timeout(1000), ...(dispatcher === undefined ? {} : { dispatcher }) });
      if (answer.ok) break;
    } catch {
      // Not serving yet.
    }
    if (Date.now() > deadline) {
      process.stderr.write(`hivemind: not deploying ${file}: the node did not serve at ${address} within a minute\n`);
      return;
    }
    await sleep(200);
  }
  await networkSettled(address, config, deadline);
  const cli = new URL('../../../../bin/hivemind.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [cli, '--addr', address, '--data-dir', config.dataDir, 'deploy', '-f', file], { stdio: 'inherit' });
  child.on('exit', (code) => {
    if (code !== 0) process.stderr.write(`hivemind: deploying ${file} failed (see above); the node keeps running\n`);
  });
}

/** How long `agent --deploy` waits, once the node serves, for the leader to set the tenant network pool. */
const DEPLOY_POOL_WAIT_MS = 15_000;

/**
 * Waits until the node's network is what a deploy should meet: with the
 * overlay on, the tenant network pool set (the leader sets it moments after
 * a new cluster starts), so that the file's containers start on their
 * tenant's network rather than on the node subnet, where they would stay
 * until restarted. At most DEPLOY_POOL_WAIT_MS (and never past `deadline`);
 * the deploy goes ahead either way.
 */
async function networkSettled(address: string, config: AgentConfig, deadline: number): Promise<void> {
  const { setTimeout: sleep } = await import('node:timers/promises');
  const { fetch } = await import('undici');
  const { dataDirApiAgent } = await import('../../api/tls.js');
  const { readLocalAdminToken } = await import('../../node/data-dir.js');
  const token = readLocalAdminToken(config.dataDir);
  if (token === undefined) return;
  const until = Math.min(deadline, Date.now() + DEPLOY_POOL_WAIT_MS);
  while (Date.now() < until) {
    try {
      const dispatcher = config.insecureApi ? undefined : dataDirApiAgent(config.dataDir);
      const answer = await fetch(`${address}/v1/network?stale`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(1000), ...(dispatcher === undefined ? {} : { dispatcher }) });
      if (answer.ok) {
        const network = (await answer.json()) as { tenantCidr?: string | null; answeredBy?: { overlay?: boolean } };
        if (network.answeredBy?.overlay !== true || (network.tenantCidr ?? null) !== null) return;
      } else {
        await answer.body?.cancel();
      }
    } catch {
      // Not answering yet: ask again.
    }
    await sleep(200);
  }
}

/**
 * Runs the node in the foreground until it stops (SIGINT or SIGTERM, a
 * leave, a fatal error). src/agent's `runAgent` handles the signals and
 * reports its own failures as `hivemind: ...` lines; only its exit code is
 * left to pass on.
 */
async function runNode(config: AgentConfig, mode: StartMode): Promise<void> {
  const { runAgent } = await import('../../agent/run.js');
  const exitCode = await runAgent(config, { mode });
  if (exitCode !== ExitCode.ok) throw new ExitRequest(exitCode);
}
