/**
 * With `--discoverable`: announces this node under the join token's topic
 * (hyperswarm) for `hivemind join --discover`, and again when the token
 * rotates. The discovery module (and hyperswarm with it) is loaded only on
 * the first announcement: an agent that does not announce never loads it.
 * A failed announcement is tried again at the next step.
 */
import type { DiscoveryAnnouncer } from '../membership/discovery.js';

/** How often the loop looks for a token to announce under, ms. */
export const DISCOVERY_INTERVAL_MS = 1000;

/** What the announcement works with. */
export interface DiscoveryAnnouncementContext {
  /** The join token in clear, once the state holds one this node can open. */
  currentToken(): string | undefined;
  /** The peer address a joiner should dial. */
  peerAddress(): string;
  /** `HIVEMIND_DISCOVERY_BOOTSTRAP` (a test network's DHT nodes), if set. */
  bootstrapList: string | undefined;
  signal: AbortSignal;
  log(line: string): void;
  logOnce(key: string, line: string): void;
}

/** See the file comment; `step` is the loop's step, `stop` ends the announcement. */
export class DiscoveryAnnouncement {
  #announcer: DiscoveryAnnouncer | undefined;
  #announcedToken: string | undefined;

  constructor(private readonly context: DiscoveryAnnouncementContext) {}

  async step(): Promise<void> {
    const { context } = this;
    const token = context.currentToken();
    if (token === undefined || token === this.#announcedToken || context.signal.aborted) return;
    try {
      await this.#announcer?.stop();
      this.#announcer = undefined;
      const { announceForDiscovery, parseBootstrapList } = await import('../membership/discovery.js');
      const parsed = parseBootstrapList(context.bootstrapList);
      if (!parsed.ok) throw new Error(parsed.problem);
      this.#announcer = await announceForDiscovery({ token, seedAddress: context.peerAddress(), ...(parsed.nodes === undefined ? {} : { bootstrap: parsed.nodes }) });
      this.#announcedToken = token;
      if (context.signal.aborted) await this.stop();
      else context.log('announced this node for `hivemind join --discover`');
    } catch (error) {
      context.logOnce(`discovery:${(error as Error).message}`, `cannot announce for discovery yet: ${(error as Error).message}`);
    }
  }

  /** Ends the announcement; never throws. */
  async stop(): Promise<void> {
    const announcer = this.#announcer;
    this.#announcer = undefined;
    await announcer?.stop().catch(() => {});
  }
}
