// Free ports of the node for process apps' ports (a process shares the
// node's network, so each instance needs ports of its own).
//
// They come from the dynamic range 20000-31999 (as Nomad's), below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
// default). A port the kernel picks for listen(0) lies in that ephemeral
// range, which it also takes the local port of every outgoing connection
// from: released again and handed to a process that binds it a moment
// later, such a port could meanwhile become the local end of one of the
// node's own connections, and the app would fail to start. Below that range
// the kernel never picks a port itself. A port is tried before it is handed
// out (something listening on it is skipped), and a port handed out is not
// handed out again for a while, so two instances starting together never
// get the same one before either binds it.
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const DYNAMIC_FIRST = 20_000;
const DYNAMIC_END = 32_000;
/** How long a port handed out is not handed out again: an app binds its port well within it. */
const HANDED_OUT_MS = 5 * 60_000;

export type PortProtocol = 'tcp' | 'udp';

export class HostPorts {
  private readonly handedOut = new Map<number, number>(); // port -> when, ms
  private readonly end: number;

  constructor(
    private readonly now: () => number = Date.now,
    /** An integer in [0, n): where the search starts. */
    private readonly random: (n: number) => number = randomInt,
    ephemeralStart: number = readEphemeralStart(),
  ) {
    this.end = Math.max(DYNAMIC_FIRST + 1_000, Math.min(DYNAMIC_END, ephemeralStart));
  }

  /** A port nothing uses now for `protocol`, on every address of the node. */
  async take(protocol: PortProtocol): Promise<number> {
    this.forgetOld();
    const span = this.end - DYNAMIC_FIRST;
    const start = this.random(span);
    for (let step = 0; step < span; step++) {
      const port = DYNAMIC_FIRST + ((start + step) % span);
      if (this.handedOut.has(port) || !(await bindable(port, protocol))) continue;
      this.handedOut.set(port, this.now());
      return port;
    }
    throw new Error(`no free ${protocol} port left in ${DYNAMIC_FIRST}-${this.end - 1} on this node for the app's ports: publish them (ports: "HOST:CONTAINER") or stop what holds that range`);
  }

  private forgetOld(): void {
    const oldest = this.now() - HANDED_OUT_MS;
    for (const [port, when] of this.handedOut) if (when < oldest) this.handedOut.delete(port);
  }
}

function readEphemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 0 ? first : DYNAMIC_END;
  } catch {
    return DYNAMIC_END;
  }
}

function bindable(port: number, protocol: PortProtocol): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const socket = createSocket('udp4');
      socket.once('error', () => {
        socket.close();
        resolve(false);
      });
      socket.bind({ port, exclusive: true }, () => socket.close(() => resolve(true)));
      return;
    }
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
