/**
 * Several node addresses (`--addr a,b`, a context's nodes): the first one
 * that accepts a connection wins, each tried for at most
 * ADDRESS_CONNECT_TIMEOUT_MS, in the order given.
 */
import { connect } from 'node:net';
import { ConnectionError } from './errors.js';

/** How long one address may take to accept a connection before the next is tried. */
export const ADDRESS_CONNECT_TIMEOUT_MS = 2_000;

/** The first of `addresses` (base URLs) whose host accepts a TCP connection; a ConnectionError naming all of them when none does. */
export async function firstAnswering(addresses: readonly string[], timeoutMs = ADDRESS_CONNECT_TIMEOUT_MS): Promise<string> {
  const reasons: string[] = [];
  for (const address of addresses) {
    const reason = await tryConnect(address, timeoutMs);
    if (reason === undefined) return address;
    reasons.push(`${address}: ${reason}`);
  }
  throw new ConnectionError(addresses.join(', '), `no node answered (${reasons.join('; ')})`, 'unreachable');
}

/** Undefined when `address` accepts a connection, else why not. */
function tryConnect(address: string, timeoutMs: number): Promise<string | undefined> {
  const url = new URL(address);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port });
    const done = (reason: string | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}
