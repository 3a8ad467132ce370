/**
 * The executor's host in the simulator (`ExecutorHost`,
 * src/executor/executor-host.ts): nothing on the real host is touched. The
 * agent runs as root (tenants' process apps run as their own users, from a
 * range no host account holds); there are no files to confine or rotate and
 * no node-local volumes; a name looks up to loopback; "next turn" is a timer
 * of 0 ms on the node's clock, so it dies with the node's life.
 */
import type { Clock } from '../node/clock.js';
import type { ExecutorHost } from '../executor/executor-host.js';

/** The simulated host of a node life on `clock`. */
export function simHost(clock: Clock): ExecutorHost {
  return {
    uid: () => 0,
    accountsIn: () => [],
    confineDataDir: () => ({ narrowed: [] }),
    rotateLog: () => {},
    lookup: () => Promise.resolve('127.0.0.1'),
    soon: (callback) => clock.setTimer(0, callback),
    keepsVolumes: false,
  };
}
