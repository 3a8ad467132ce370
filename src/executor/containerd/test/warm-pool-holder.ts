// A process that holds a warm pool, for the crash test of warm-pool.test.ts:
// opens a ContainerdRuntime with a pool over DATA_DIR (containerd at SOCKET,
// CNI bridge BRIDGE on SUBNET), waits until the pool is full, starts one
// container on a warm network, prints one JSON line (the free names and the
// container's network id), then waits to be killed.
// Usage: node warm-pool-holder.js DATA_DIR SOCKET BRIDGE SUBNET SIZE
import { join } from 'node:path';
import { ContainerdRuntime } from '../containerd-runtime.js';
import { CniNetwork } from '../network.js';
import { busyboxWorkload } from './harness.js';

const [dataDir, socketPath, bridge, subnet, sizeText] = process.argv.slice(2) as [string, string, string, string, string];
const network = new CniNetwork({ stateDir: join(dataDir, 'cni'), bridge, subnet });
const runtime = new ContainerdRuntime({ dataDir, log: (line) => process.stderr.write(`${line}\n`), socketPath, manageContainerd: false, network, warmNetworks: Number(sizeText) });
await runtime.open();
await runtime.warmPool!.settled();
const held = await runtime.start(busyboxWorkload(dataDir, 'crash-held-1', { specHash: 'held', command: ['sleep', '100000'] }));
await runtime.warmPool!.settled();
const { container } = await runtime.client.unary<{ container: { labels: Record<string, string> } }>('containers', 'Get', { id: 'crash-held-1' });
process.stdout.write(`${JSON.stringify({ names: runtime.warmPool!.names(), held: container.labels['hivemind.network-id'], address: held.address })}\n`);
setInterval(() => undefined, 60_000);
