/**
 * One gossip member as a process, for benchmarks: the real runtime (UDP,
 * TCP push-pull, encryption) with nothing else of an agent.
 *
 *   node dist/src/membership/member-main.js --id m1 --key-hex <64 hex> [--port 0] [--bind 127.0.0.1] [--seeds h:p,h:p]
 *
 * Prints `ready <port>` once bound, then one line per membership change it
 * observes: `event <type> <id> <incarnation>`. SIGTERM leaves gracefully.
 */
import { parseArgs } from 'node:util';
import { GossipRuntime } from './runtime.js';

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    'key-hex': { type: 'string' },
    port: { type: 'string', default: '0' },
    bind: { type: 'string', default: '127.0.0.1' },
    seeds: { type: 'string', default: '' },
  },
});

function fail(message: string): never {
  process.stderr.write(`member: ${message}\n`);
  process.exit(2);
}

const id = values.id ?? fail('--id is required');
const keyHex = values['key-hex'] ?? fail('--key-hex is required (64 hex digits: the 32-byte cluster key)');
if (!/^[0-9a-f]{64}$/i.test(keyHex)) fail('--key-hex must be 64 hex digits');
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got "${values.port}"`);

const runtime = new GossipRuntime({
  bindHost: values.bind!,
  port,
  observer: {
    event: (event) => process.stdout.write(`event ${event.type} ${event.id} ${event.incarnation}\n`),
    log: (line) => process.stderr.write(`member ${id}: ${line}\n`),
  },
});
const bound = await runtime.bind();
runtime.start({
  id,
  address: `${values.bind}:${bound}`,
  meta: {},
  clusterKey: Buffer.from(keyHex, 'hex'),
  seeds: values.seeds!.split(',').filter((seed) => seed !== ''),
});
process.stdout.write(`ready ${bound}\n`);
process.once('SIGTERM', () => {
  void runtime.stop().then(() => process.exit(0));
});
