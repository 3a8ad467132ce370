// Image archives streamed to a node: `hivemind image import FILE` sends the
// file's bytes to the node the CLI talks to (POST /v1/images/upload), which
// imports them into its containerd and removes its temporary copy; the
// route imports from the stream alone (the bytes come from memory, no file
// on disk), refuses a body of the wrong type (415) or over the limit (413)
// with a clear error, and the path form (POST /v1/images/import) still works.
import { request as httpsRequest } from 'node:https';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, type TestNode } from '../../../agent/test/harness.js';
import { runCli } from '../../../cli/test/run-cli.js';
import { IMAGE_ARCHIVE_BYTES_MAX } from '../../../api/routes-images.js';
import { dataDirApiAgent, nodeIdentityCheck } from '../../../api/tls.js';
import { TestContainerd, skipReason } from './harness.js';

const skip = skipReason();
const containerd = new TestContainerd();
const cluster = new TestCluster(50);
let node: TestNode;

function address(): string {
  return `127.0.0.1:${node.apiPort}`;
}

async function upload(body: Buffer, contentType: string, query = ''): Promise<{ status: number; json: any }> {
  const response = await request(`https://${address()}/v1/images/upload${query}`, {
    dispatcher: dataDirApiAgent(node.dataDir),
    method: 'POST',
    headers: { authorization: `Bearer ${cluster.token}`, 'content-type': contentType },
    body,
  });
  return { status: response.statusCode, json: await response.body.json() };
}

async function imageNames(): Promise<string[]> {
  const answer = await node.request('GET', '/v1/images');
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  return (answer.body.images as { name: string }[]).map((image) => image.name);
}

function uploadsLeft(): string[] {
  try {
    return readdirSync(join(node.dataDir, 'containerd-runtime', 'uploads'));
  } catch {
    return [];
  }
}

test.before(async () => {
  if (skip !== undefined) return;
  await containerd.start();
  process.env.HIVEMIND_CONTAINERD_SOCKET = containerd.own!.socketPath;
  // No warm networks: the harness ends the agent with SIGKILL and removes its folder, which would leave the pool's namespaces behind.
  process.env.HIVEMIND_WARM_NETWORKS = '0';
  node = await cluster.bootstrap('u1');
});

test.after(async () => {
  if (skip !== undefined) return;
  delete process.env.HIVEMIND_CONTAINERD_SOCKET;
  delete process.env.HIVEMIND_WARM_NETWORKS;
  await cluster.cleanup().catch(() => undefined);
  await containerd.stop();
});

test('hivemind image import FILE streams the archive to the node', async () => {
  if (skip !== undefined) return console.log(`skipping: ${skip}`);
  const result = await runCli(['--addr', address(), '--token', cluster.token, 'image', 'import', containerd.archivePath, '--name', 'hivemind.local/uploaded:1']);
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, /imported hivemind\.local\/uploaded:1/);
  assert.ok((await imageNames()).includes('hivemind.local/uploaded:1'));
  assert.equal(uploadsLeft(), [], 'the temporary copy is removed');
  const missing = await runCli(['--addr', address(), '--token', cluster.token, 'image', 'import', join(containerd.dataDir, 'no-such.tar')]);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /cannot import .*no-such\.tar: no such file/);
});

test('the upload route imports from the stream alone; bad input is refused', async () => {
  if (skip !== undefined) return;
  const bytes = readFileSync(containerd.archivePath);
  const imported = await upload(bytes, 'application/x-tar', '?name=hivemind.local/from-memory:2');
  assert.is(imported.status, 200, JSON.stringify(imported.json));
  assert.equal(imported.json.images, ['hivemind.local/from-memory:2']);
  assert.ok((await imageNames()).includes('hivemind.local/from-memory:2'));

  const wrongType = await upload(bytes, 'application/json');
  assert.is(wrongType.status, 415);
  assert.is(wrongType.json.error.code, 'unsupported-media-type');
  assert.match(wrongType.json.error.message, /application\/x-tar/);

  const notAnArchive = await upload(Buffer.from('this is not a tar file'), 'application/octet-stream');
  assert.is(notAnArchive.status, 400, JSON.stringify(notAnArchive.json));
  assert.equal(uploadsLeft(), [], 'a refused archive leaves no copy');

  // A declared length over the limit is refused before any byte is read.
  const tooLarge = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const outgoing = httpsRequest({ host: '127.0.0.1', port: node.apiPort, ca: readFileSync(join(node.dataDir, 'tls', 'ca.crt')), checkServerIdentity: nodeIdentityCheck(), path: '/v1/images/upload', method: 'POST', headers: { authorization: `Bearer ${cluster.token}`, 'content-type': 'application/x-tar', 'content-length': String(IMAGE_ARCHIVE_BYTES_MAX + 1) } }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve({ status: response.statusCode ?? 0, text }));
    });
    outgoing.on('error', reject);
    outgoing.write(Buffer.alloc(1024));
  });
  assert.is(tooLarge.status, 413);
  assert.match(JSON.parse(tooLarge.text).error.message, /over the limit of \d+ bytes \(4 GiB\)/);
});

test('the path form imports an archive already on the node', async () => {
  if (skip !== undefined) return;
  const answer = await node.request('POST', '/v1/images/import', { path: containerd.archivePath, name: 'hivemind.local/by-path:3' });
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  assert.ok((await imageNames()).includes('hivemind.local/by-path:3'));
});

test.run();
