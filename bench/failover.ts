import { findLeader, waitHealthy, type BenchCluster } from './cluster.js';
import { sleep } from './processes.js';
import { unaryMethod, type UnaryMethod } from './rpc.js';
import { UnaryChannel } from './unary-channel.js';

/** Settings of one failover trial. */
export interface FailoverOptions {
  clients: number;
  valueBytes: number;
  /** Load on the healthy cluster before the leader is killed. */
  preKillMs: number;
  /** Deadline of one Put. */
  deadlineMs: number;
  /** A trial that sees no write acknowledged by a new leader within this gives up. */
  trialTimeoutMs: number;
  keyPrefix: string;
}

/** What one trial measured. Times are from process.hrtime. */
export interface FailoverTrial {
  killed: string;
  newLeader: string | undefined;
  /** Last acknowledged write before the kill to the first acknowledged after it; undefined if none came. */
  unavailableMs: number | undefined;
  /** The kill to the first acknowledged write after it. */
  killToFirstAckMs: number | undefined;
  /** Puts that failed (errors and deadlines) during the trial. */
  errors: number;
}

interface Acknowledgement {
  atNs: bigint;
  member: string;
}

/**
 * Sends to whichever member leads; a client whose Put fails asks every running
 * member for its status until one says it leads. Discovery is shared: one
 * round at a time, and a client that failed on a stale target just follows.
 */
class LeaderRouter {
  target: { id: string; channel: UnaryChannel };
  readonly put: UnaryMethod;
  stopped = false;
  private discovering: Promise<void> | undefined;
  private readonly channels = new Map<string, UnaryChannel>();

  constructor(private readonly cluster: BenchCluster, leader: string) {
    this.put = unaryMethod(cluster.putService, 'Put');
    this.target = { id: leader, channel: this.channelOf(leader) };
  }

  /** Called after a Put to `failedId` failed; resolves once the target may have changed. */
  async rediscover(failedId: string): Promise<void> {
    if (this.target.id !== failedId) return;
    this.discovering ??= this.discover().finally(() => (this.discovering = undefined));
    await this.discovering;
  }

  close(): void {
    this.channels.forEach((channel) => channel.close());
  }

  private async discover(): Promise<void> {
    while (!this.stopped) {
      const leader = await findLeader(this.cluster, 200);
      if (leader !== undefined) {
        this.target = { id: leader, channel: this.channelOf(leader) };
        return;
      }
      await sleep(20);
    }
  }

  private channelOf(id: string): UnaryChannel {
    let channel = this.channels.get(id);
    if (!channel) {
      channel = new UnaryChannel(this.cluster.clientAddress(id), this.cluster.tls);
      this.channels.set(id, channel);
    }
    return channel;
  }
}

/**
 * One trial: load the healthy cluster, SIGKILL its leader, wait for a write
 * acknowledged by another member, then restart the killed member and wait
 * until the cluster is healthy again (so trials start alike).
 */
export async function runFailoverTrial(cluster: BenchCluster, options: FailoverOptions): Promise<FailoverTrial> {
  const leader = await waitHealthy(cluster, { timeoutMs: 30_000 });
  const router = new LeaderRouter(cluster, leader);
  const acknowledgements: Acknowledgement[] = [];
  const counters = { errors: 0 };
  const value = Buffer.alloc(options.valueBytes, 'f');
  const loops = Array.from({ length: options.clients }, (_, index) =>
    failoverClient({ router, keyPrefix: `${options.keyPrefix}/${index}`, value, deadlineMs: options.deadlineMs, acknowledgements, counters }),
  );
  await sleep(options.preKillMs);
  const killNs = process.hrtime.bigint();
  await cluster.kill(leader);
  const firstAfter = await waitForAcknowledgement({ acknowledgements, afterNs: killNs, notFrom: leader, timeoutMs: options.trialTimeoutMs });
  router.stopped = true;
  await Promise.all(loops);
  router.close();
  const lastBefore = acknowledgements.filter((ack) => ack.atNs <= killNs).at(-1);
  await cluster.restart(leader);
  await waitHealthy(cluster, { timeoutMs: 30_000 });
  const ms = (from: bigint | undefined, to: bigint | undefined): number | undefined =>
    from === undefined || to === undefined ? undefined : Number(to - from) / 1e6;
  return {
    killed: leader,
    newLeader: firstAfter?.member,
    unavailableMs: ms(lastBefore?.atNs, firstAfter?.atNs),
    killToFirstAckMs: ms(killNs, firstAfter?.atNs),
    errors: counters.errors,
  };
}

async function failoverClient(context: {
  router: LeaderRouter;
  keyPrefix: string;
  value: Buffer;
  deadlineMs: number;
  acknowledgements: Acknowledgement[];
  counters: { errors: number };
}): Promise<void> {
  const { router, keyPrefix, value, deadlineMs, acknowledgements, counters } = context;
  for (let sequence = 0; !router.stopped; sequence++) {
    const target = router.target;
    try {
      const request = router.put.encodeRequest({ key: Buffer.from(`${keyPrefix}/${sequence}`), value });
      await target.channel.call({ path: router.put.path, request, deadlineMs });
      acknowledgements.push({ atNs: process.hrtime.bigint(), member: target.id });
    } catch {
      counters.errors++;
      await router.rediscover(target.id);
    }
  }
}

/** The first acknowledgement after `afterNs` from a member other than `notFrom`, polled every 5 ms. */
async function waitForAcknowledgement(options: {
  acknowledgements: Acknowledgement[];
  afterNs: bigint;
  notFrom: string;
  timeoutMs: number;
}): Promise<Acknowledgement | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    const found = options.acknowledgements.find((ack) => ack.atNs > options.afterNs && ack.member !== options.notFrom);
    if (found) return found;
    await sleep(5);
  }
  return undefined;
}
