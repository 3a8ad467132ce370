// Health-check probes against real local servers and real processes: HTTP
// (undici), TCP, and exec through the process runtime.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { httpProbe, runProbe, tcpProbe } from '../health.js';
import { ProcessRuntime } from '../process-runtime.js';
import type { HealthcheckSpec } from '../../state/types.js';
import { freePorts } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'hivemind-health-'));
let http: HttpServer;
let tcp: TcpServer;
let httpPort = 0;
let tcpPort = 0;

test.before(async () => {
  http = createHttpServer((request, response) => {
    if (request.url === '/slow') return void setTimeout(() => response.end('late'), 2000);
    response.statusCode = request.url === '/healthz' ? 200 : 503;
    response.end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpPort = (http.address() as { port: number }).port;
  tcp = createTcpServer((socket) => socket.end());
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  tcpPort = (tcp.address() as { port: number }).port;
});

test.after(async () => {
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
  await new Promise((resolve) => tcp.close(resolve));
  rmSync(root, { recursive: true, force: true });
});

test('HTTP: a 2xx passes; another status, a refused connection and a timeout fail with a reason', async () => {
  assert.is(await httpProbe(`http://127.0.0.1:${httpPort}/healthz`, 2000), undefined);
  assert.match((await httpProbe(`http://127.0.0.1:${httpPort}/other`, 2000)) ?? '', /answered 503/);
  assert.match((await httpProbe(`http://127.0.0.1:${httpPort}/slow`, 200)) ?? '', /did not answer within 200 ms/);
  const [closed] = await freePorts(1);
  assert.match((await httpProbe(`http://127.0.0.1:${closed}/`, 2000)) ?? '', /failed/);
});

test('TCP: an accepted connection passes, a refused one fails', async () => {
  assert.is(await tcpProbe('127.0.0.1', tcpPort, 2000), undefined);
  const [closed] = await freePorts(1);
  assert.match((await tcpProbe('127.0.0.1', closed!, 2000)) ?? '', /connecting to 127\.0\.0\.1:\d+ failed/);
});

test('the probe kinds through runProbe, exec in a process workload', async () => {
  const runtime = new ProcessRuntime({ stateDir: join(root, 'state') });
  await runtime.open();
  await runtime.start({
    id: 'h.exec.0', tenant: 'default', app: 'h', version: 1, specHash: 'x', command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'],
    environment: { READY_FILE: join(root, 'ready') }, readOnly: false, ports: [], limits: {}, mounts: [], secrets: [],
    logPath: join(root, 'h.log'), stopSignal: 'SIGTERM', stopGraceMs: 2000, labels: {},
  });
  const spec = (testForm: string[]): HealthcheckSpec => ({ test: testForm, intervalMs: 1000, timeoutMs: 2000, retries: 3, startPeriodMs: 0 });
  const target = { id: 'h.exec.0', runtime };
  try {
    assert.match((await runProbe(spec(['CMD-SHELL', 'test -f "$READY_FILE"']), target)) ?? '', /exited with code 1/);
    assert.is(await runProbe(spec(['CMD', '/bin/sh', '-c', 'touch "$READY_FILE"']), target), undefined);
    assert.is(await runProbe(spec(['CMD-SHELL', 'test -f "$READY_FILE"']), target), undefined);
    assert.is(await runProbe(spec(['HTTP', `http://127.0.0.1:${httpPort}/healthz`]), target), undefined);
    assert.is(await runProbe(spec(['TCP', `127.0.0.1:${tcpPort}`]), target), undefined);
    assert.match((await runProbe(spec(['HTTP', `http://127.0.0.1:${httpPort}/other`]), target)) ?? '', /503/);
  } finally {
    await runtime.stop('h.exec.0', { signal: 'SIGKILL', graceMs: 0 });
    await runtime.close();
  }
});

test.run();
