/**
 * The standalone replicated key-value server: one Raft node (LevelDB storage
 * under --data-dir, gRPC peer transport on --peer-listen) serving
 * proto/kv.proto's KV service on --client-listen. Used by the tests, the
 * benchmark and the chaos harness; see `USAGE` in ./command-line.ts.
 *
 * With --tls-dir both ports speak mutual TLS (./tls.ts); without it, plaintext.
 *
 * Output: one JSON line on stdout once both ports listen,
 *   {"event":"ready","id":"a","peer":"127.0.0.1:7001","client":"127.0.0.1:7101","tls":false}
 * and log lines on stderr. SIGTERM or SIGINT stops it gracefully (exit 0);
 * bad flags or an unusable --tls-dir exit 2; a fatal error (storage, a broken
 * invariant) exits 1, and the supervisor restarts the process from its disk.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RaftNode } from '../node.js';
import { LevelStorage } from '../storage-level.js';
import { GrpcTransport } from '../transport-grpc.js';
import { parseCommandLine, USAGE, type ServerSettings } from './command-line.js';
import { UnaryGrpcServer } from './grpc-unary-server.js';
import { KvService } from './kv-service.js';
import { KEY_BYTES_MAX, KvStateMachine, VALUE_BYTES_MAX } from './kv-state-machine.js';
import { LevelKvValues } from './kv-values-level.js';
import {
  clientPortTlsOptions,
  pinnedChannelCredentials,
  readTlsDirectory,
  TLS_SERVER_NAME,
  TlsDirectoryError,
  transportSecurity,
  type ServerTls,
} from './tls.js';

/** Room in one entry beside the key and value, for the command's framing. */
const COMMAND_OVERHEAD_BYTES = 1024;
/** How long a graceful stop waits for calls in flight before closing their connections. */
const SHUTDOWN_GRACE_MS = 2000;
/** A turn of the event loop longer than this is logged: heartbeats wait behind it. */
const LOOP_STALL_LOG_MS = 100;
/** At most one stall line per this long. */
const LOOP_STALL_LOG_EVERY_MS = 10_000;

function log(id: string, line: string): void {
  process.stderr.write(`${new Date().toISOString()} [${id}] ${line}\n`);
}

async function main(): Promise<void> {
  const parsed = parseCommandLine(process.argv.slice(2));
  if (!parsed.ok) {
    process.stderr.write(`hivemind kv server: ${parsed.error}\n\n${USAGE}\n`);
    process.exit(2);
  }
  const settings = parsed.settings;
  const logLine = (line: string): void => log(settings.id, line);
  process.on('uncaughtException', (error) => {
    logLine(`uncaught exception, exiting: ${error.stack ?? error.message}`);
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    logLine(`unhandled rejection, exiting: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  });

  watchLoopStalls(logLine);
  const tls = readTls(settings);
  const { node, stateMachine, transport, values } = await startNode(settings, tls, logLine);
  const service = new KvService({
    node,
    stateMachine,
    clientAddresses: Object.fromEntries(settings.cluster.map((member) => [member.id, member.clientAddress])),
    ...(tls && {
      forwardChannel: (id: string) => ({ credentials: pinnedChannelCredentials(tls, id), options: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME } }),
    }),
    logger: logLine,
  });
  const server = new UnaryGrpcServer({
    methods: service.methods(),
    requestBytesMax: VALUE_BYTES_MAX + KEY_BYTES_MAX + 64 * 1024,
    ...(tls && { tls: clientPortTlsOptions(tls) }),
    logger: logLine,
  });
  const clientAddress = await server.listen(settings.clientListen); // a failure exits 1 through main().catch

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logLine(`${signal}: stopping`);
    // The node first: requests waiting on it are answered (UNAVAILABLE), so the server drains quickly.
    await node.stop();
    await values.close();
    service.close();
    await server.close(SHUTDOWN_GRACE_MS);
    logLine('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const ready = { event: 'ready', id: settings.id, peer: transport.address, client: clientAddress, tls: tls !== undefined };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

/**
 * Logs the longest event-loop delay of each interval in which one passed
 * `LOOP_STALL_LOG_MS`: a stall as long as an election timeout on the leader
 * deposes it (its heartbeats wait behind the stall).
 */
function watchLoopStalls(logLine: (line: string) => void): void {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  setInterval(() => {
    const longestMs = delay.max / 1e6;
    if (longestMs > LOOP_STALL_LOG_MS) {
      logLine(`event loop held for up to ${longestMs.toFixed(0)} ms in the last ${LOOP_STALL_LOG_EVERY_MS / 1000} s (delay p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms)`);
    }
    delay.reset();
  }, LOOP_STALL_LOG_EVERY_MS).unref();
}

/** The TLS material of --tls-dir, or undefined without it; an unusable directory exits 2 with what is wrong. */
function readTls(settings: ServerSettings): ServerTls | undefined {
  if (settings.tlsDirectory === undefined) return undefined;
  try {
    return readTlsDirectory(settings.tlsDirectory, { id: settings.id, memberIds: settings.cluster.map((member) => member.id) });
  } catch (error) {
    if (!(error instanceof TlsDirectoryError)) throw error;
    process.stderr.write(`hivemind kv server: ${error.message}\n`);
    process.exit(2);
  }
}

async function startNode(
  settings: ServerSettings,
  tls: ServerTls | undefined,
  logLine: (line: string) => void,
): Promise<{ node: RaftNode; stateMachine: KvStateMachine; transport: GrpcTransport; values: LevelKvValues }> {
  mkdirSync(settings.dataDirectory, { recursive: true });
  // The values outside the JavaScript heap; emptied here, rebuilt from the Raft snapshot and log.
  const values = new LevelKvValues({
    directory: join(settings.dataDirectory, 'kv'),
    onFatal: (error) => {
      logLine(`exiting after a fatal error: ${error.message}`);
      process.exit(1);
    },
  });
  try {
    await values.open();
  } catch (error) {
    logLine(`cannot open the key-value store: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  const storage = new LevelStorage({ directory: join(settings.dataDirectory, 'raft'), logger: logLine });
  const transport = new GrpcTransport({
    id: settings.id,
    listen: settings.peerListen,
    logger: logLine,
    ...(tls && { security: transportSecurity(tls) }),
  });
  const stateMachine = new KvStateMachine({ values });
  const node = new RaftNode({
    id: settings.id,
    storage,
    transport,
    stateMachine,
    peers: Object.fromEntries(settings.cluster.map((member) => [member.id, member.peerAddress])),
    tickMs: settings.tickMs,
    raft: {
      electionTimeoutTicks: settings.electionTicks,
      heartbeatIntervalTicks: settings.heartbeatTicks,
      entryBytesMax: VALUE_BYTES_MAX + KEY_BYTES_MAX + COMMAND_OVERHEAD_BYTES,
    },
    snapshotEveryEntries: settings.snapshotEveryEntries,
    logger: logLine,
    onFatal: (error) => {
      logLine(`exiting after a fatal error: ${error.message}`);
      process.exit(1);
    },
  });
  try {
    await node.start({ bootstrap: { voters: settings.cluster.map((member) => member.id), learners: [] } });
  } catch (error) {
    logLine(`cannot start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  return { node, stateMachine, transport, values };
}

main().catch((error: unknown) => {
  process.stderr.write(`hivemind kv server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
