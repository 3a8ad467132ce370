import { sleep } from './processes.js';
import { unaryMethod, type ServiceSpec, type UnaryMethod } from './rpc.js';
import type { ClientTls } from './tls.js';
import { UnaryChannel } from './unary-channel.js';

/**
 * The load generator both systems are measured with: `clients` concurrent
 * clients, each sending unary `Put`s of a `valueBytes` value to distinct keys,
 * one at a time (the next Put leaves when the previous one is acknowledged).
 * The clients share `channels` HTTP/2 connections round-robin (UnaryChannel).
 * It needs only a service whose `Put` takes `{ key: bytes = 1, value: bytes = 2 }`,
 * which both Hivemind's kv.proto and etcd's rpc.proto have; requests are
 * encoded from that .proto.
 */
export interface LoadOptions {
  service: ServiceSpec;
  /** `host:port` every Put goes to (the benchmark sends to the leader). */
  address: string;
  clients: number;
  channels: number;
  valueBytes: number;
  /** Puts during the warm-up are sent but not measured. */
  warmupMs: number;
  durationMs: number;
  /** Deadline of one Put; a Put that misses it counts as an error. */
  deadlineMs: number;
  /** Makes keys distinct across rows, systems and load processes. */
  keyPrefix: string;
  /** Mutual TLS to the target; undefined: cleartext. */
  tls: ClientTls | undefined;
}

/** What one load process measured. Latencies are of Puts acknowledged inside the window. */
export interface LoadResult {
  /** Puts acknowledged inside the measurement window. */
  operations: number;
  /** Puts that failed inside the window (deadline or error). */
  errors: number;
  /** The first error message seen, for the report. */
  firstError: string | undefined;
  /** Per-Put latency, send to acknowledgement, in nanoseconds. */
  latenciesNs: Float64Array;
  windowMs: number;
  /** CPU time this load process used during the window (user + system). */
  cpuMs: number;
  /** What its first connection negotiated (`TLSv1.3 TLS_AES_256_GCM_SHA384`); undefined for cleartext. */
  tlsDescription: string | undefined;
}

/** Connected clients, ready to `run` once. */
export interface PreparedLoad {
  run(): Promise<LoadResult>;
  close(): void;
}

interface Window {
  startNs: bigint;
  endNs: bigint;
}

/**
 * Recorded outcomes inside the window; grows by doubling, so recording costs
 * no allocation per Put. Its size is bounded by the window: at 10 000
 * Puts/s a 60 s window holds 4.8 MB of samples.
 */
class Recorder {
  latenciesNs = new Float64Array(1 << 16);
  operations = 0;
  errors = 0;
  firstError: string | undefined;

  recordSuccess(latencyNs: number): void {
    if (this.operations === this.latenciesNs.length) {
      const grown = new Float64Array(this.latenciesNs.length * 2);
      grown.set(this.latenciesNs);
      this.latenciesNs = grown;
    }
    this.latenciesNs[this.operations++] = latencyNs;
  }

  recordError(message: string): void {
    this.errors++;
    this.firstError ??= message;
  }
}

/** Opens `channels` connections to the target and waits until they are all up. */
export async function prepareLoad(options: LoadOptions): Promise<PreparedLoad> {
  const channels = Array.from({ length: options.channels }, () => new UnaryChannel(options.address, options.tls));
  await Promise.all(channels.map((channel) => channel.connect(10_000)));
  return {
    run: () => runClients(options, channels),
    close: () => channels.forEach((channel) => channel.close()),
  };
}

async function runClients(options: LoadOptions, channels: UnaryChannel[]): Promise<LoadResult> {
  const put = unaryMethod(options.service, 'Put');
  const value = Buffer.alloc(options.valueBytes, 'v');
  const nowNs = process.hrtime.bigint();
  const startNs = nowNs + BigInt(options.warmupMs) * 1_000_000n;
  const window: Window = { startNs, endNs: startNs + BigInt(options.durationMs) * 1_000_000n };
  const recorder = new Recorder();
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  const cpuTimer = setTimeout(() => (cpuAtStart = process.cpuUsage()), options.warmupMs);
  const loops = Array.from({ length: options.clients }, (_, index) =>
    clientLoop({
      channel: channels[index % channels.length]!,
      put,
      keyPrefix: `${options.keyPrefix}/${index}`,
      value,
      deadlineMs: options.deadlineMs,
      window,
      recorder,
    }),
  );
  await Promise.all(loops);
  clearTimeout(cpuTimer);
  const cpu = process.cpuUsage(cpuAtStart);
  return {
    operations: recorder.operations,
    errors: recorder.errors,
    firstError: recorder.firstError,
    latenciesNs: recorder.latenciesNs.slice(0, recorder.operations),
    windowMs: options.durationMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    tlsDescription: channels[0]?.tlsDescription,
  };
}

/** One client: sequential Puts to keys `keyPrefix/0`, `keyPrefix/1`, ... until the window ends. */
async function clientLoop(context: {
  channel: UnaryChannel;
  put: UnaryMethod;
  keyPrefix: string;
  value: Buffer;
  deadlineMs: number;
  window: Window;
  recorder: Recorder;
}): Promise<void> {
  const { channel, put, keyPrefix, value, deadlineMs, window, recorder } = context;
  for (let sequence = 0; process.hrtime.bigint() < window.endNs; sequence++) {
    const request = put.encodeRequest({ key: Buffer.from(`${keyPrefix}/${sequence}`), value });
    const sentNs = process.hrtime.bigint();
    let failure: string | undefined;
    try {
      await channel.call({ path: put.path, request, deadlineMs });
    } catch (error) {
      failure = (error as Error).message;
    }
    const doneNs = process.hrtime.bigint();
    const inWindow = doneNs >= window.startNs && doneNs < window.endNs;
    if (failure === undefined) {
      if (inWindow) recorder.recordSuccess(Number(doneNs - sentNs));
    } else {
      if (inWindow) recorder.recordError(failure);
      await sleep(10); // a refusing server must not turn the client into a busy loop
    }
  }
}
