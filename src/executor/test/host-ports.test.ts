// The ports a node gives process apps: below the kernel's ephemeral range,
// never one something listens on, never the same one twice while it may
// still be unbound.
import { createServer, type Server } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HostPorts } from '../host-ports.js';

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}

function inRange(port: number): boolean {
  return Number.isInteger(port) && port >= 20_000 && port < 32_000;
}

test('ports come from 20000-31999, are not handed out twice in a while, and skip one in use', async () => {
  let now = 0;
  const ports = new HostPorts(() => now, () => 0, 32_768);
  const first = await ports.take('tcp');
  const second = await ports.take('tcp');
  assert.ok(inRange(first) && inRange(second), `${first}, ${second}`);
  assert.is.not(second, first, 'a port handed out a moment ago is not handed out again');

  // Past the window, the first port is free to hand out again, unless something listens on it.
  now += 10 * 60_000;
  const holder = await listen(first);
  try {
    const third = await ports.take('tcp');
    assert.ok(inRange(third));
    assert.is.not(third, first, 'a port something listens on is skipped');
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
  now += 10 * 60_000;
  assert.is(await ports.take('tcp'), first, 'free and no longer held back: the search starts there again');
});

test('udp ports too, and the range ends below an ephemeral range that starts early', async () => {
  const ports = new HostPorts(() => 0, (n) => n - 1, 25_000);
  const port = await ports.take('udp');
  assert.is(port, 24_999, 'the search started at the last port below the ephemeral range');
});

test.run();
