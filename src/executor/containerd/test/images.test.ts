// Images against a real containerd started by the test: import the busybox
// OCI layout archive (unpacked into a snapshot once), pull it from a local
// registry with Bearer token auth, refuse a tampered layer with a digest
// error, refuse a blob written whole (one COMMIT) or in chunks whose bytes do
// not match its digest or size, and the pure pieces (references, chain ids, challenges, event decoding).
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ImageError, ImageStore, chainIds } from '../images.js';
import { sha256Digest } from '../oci-layout.js';
import { decodeTaskExit } from '../protobuf-wire.js';
import { RegistryClient, normalizeReference, parseBearerChallenge, parseReference } from '../registry.js';
import { TestContainerd, skipReason } from './harness.js';
import { TestRegistry } from './registry-server.js';

const skip = skipReason();
const containerd = new TestContainerd();
const registry = new TestRegistry();
let store: ImageStore;

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the containerd image tests: ${skip}`);
    return;
  }
  await containerd.start();
  store = new ImageStore({ client: containerd.client! });
  await registry.addRepository('hivemind/busybox', 'v1', containerd.archivePath);
  await registry.addRepository('hivemind/tampered', 'v1', containerd.archivePath, { tamperLayers: true });
  await registry.start();
});

test.after(async () => {
  await registry.stop();
  await containerd.stop();
});

test('references are parsed with Docker defaults', () => {
  assert.equal(normalizeReference('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalizeReference('127.0.0.1:5000/team/app:v2'), '127.0.0.1:5000/team/app:v2');
  assert.equal(parseReference('localhost/app@sha256:' + 'a'.repeat(64)), { registry: 'localhost', repository: 'app', digest: 'sha256:' + 'a'.repeat(64) });
  assert.throws(() => parseReference('Bad Name'), /not an image reference/);
  // A reference that is not one is the caller's mistake (the API answers 400), never the registry's.
  for (const [reference, text] of [['../../x', 'is not valid'], ['UPPER', 'repository "library/UPPER" is not valid'], ['x@sha256:zz', 'sha256:<64 hex digits>'], ['x:-tag', 'tag "-tag" is not valid']] as const) {
    assert.throws(() => parseReference(reference), (error: ImageError) => error.code === 'invalid-reference' && error.message.includes(text), reference);
  }
  assert.equal(parseBearerChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
    realm: 'https://auth.example/token',
    service: 'registry.example',
    scope: 'repository:a/b:pull',
  });
});

test('chain ids follow the OCI image spec', () => {
  const a = sha256Digest('a');
  const b = sha256Digest('b');
  assert.equal(chainIds([a, b]), [a, sha256Digest(`${a} ${b}`)]);
});

test('a TaskExit is decoded from its wire bytes', () => {
  // container_id "c1" (1), id "c1" (2), pid 42 (3), exit_status 137 (4)
  const bytes = Uint8Array.from([0x0a, 2, 0x63, 0x31, 0x12, 2, 0x63, 0x31, 0x18, 42, 0x20, 0x89, 0x01]);
  assert.equal(decodeTaskExit(bytes), { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 137 });
});

test('import the busybox OCI layout: image record, unpacked once', async () => {
  if (skip !== undefined) return;
  const names = await store.importArchive(containerd.archivePath);
  assert.equal(names, ['hivemind.local/busybox:latest']);
  const images = await store.list();
  const busybox = images.find((image) => image.name === 'hivemind.local/busybox:latest');
  assert.ok(busybox, 'the image is listed');
  assert.is(busybox!.digest, containerd.image!.manifestDigest);
  const resolved = await store.resolve('hivemind.local/busybox:latest');
  assert.is(resolved.chainId, containerd.image!.layerDigest, 'one layer: its chain id is its diff id');
  assert.equal(resolved.config.Cmd, ['sh']);
  // A second import finds every blob and the snapshot there already.
  assert.equal(await store.importArchive(containerd.archivePath, { name: 'hivemind.local/busybox:again' }), ['hivemind.local/busybox:again']);
  assert.is((await store.resolve('hivemind.local/busybox:again')).chainId, resolved.chainId);
});

test('an archive that is not an OCI layout is refused clearly', async () => {
  if (skip !== undefined) return;
  const { writeFile } = await import('node:fs/promises');
  const path = `${containerd.dataDir}/not-a-layout.tar`;
  await writeFile(path, Buffer.alloc(4096, 7));
  try {
    await store.importArchive(path);
    assert.unreachable('a damaged archive must be refused');
  } catch (error) {
    assert.instance(error, ImageError);
    assert.match((error as Error).message, /cannot read the image archive/);
  }
});

test('pull from the local registry with a bearer token', async () => {
  if (skip !== undefined) return;
  await store.remove('hivemind.local/busybox:latest');
  const client = new RegistryClient({ images: store });
  const name = await client.pull(`${registry.host}/hivemind/busybox:v1`);
  assert.is(name, `${registry.host}/hivemind/busybox:v1`);
  const resolved = await store.resolve(name);
  assert.is(resolved.manifestDigest, containerd.image!.manifestDigest);
  assert.ok(registry.requests.some((line) => line.endsWith('anon')), 'the first request was challenged');
  assert.ok(registry.requests.some((line) => line.startsWith('GET /token')), 'a token was fetched');
  assert.ok(registry.requests.some((line) => line.startsWith('GET /v2/hivemind/busybox/manifests/v1 auth')), 'the manifest was fetched with the token');
});

test('a tampered layer is refused with a digest error and nothing is recorded', async () => {
  if (skip !== undefined) return;
  // Another content store namespace, so the good layer from the earlier tests is not already there.
  const { ContainerdClient } = await import('../client.js');
  const client = new ContainerdClient({ socketPath: containerd.own!.socketPath, namespace: 'hivemind-tamper-test' });
  await client.ensureNamespace();
  const otherStore = new ImageStore({ client });
  try {
    await new RegistryClient({ images: otherStore }).pull(`${registry.host}/hivemind/tampered:v1`);
    assert.unreachable('the tampered layer must be refused');
  } catch (error) {
    assert.instance(error, ImageError);
    assert.is((error as ImageError).code, 'digest-mismatch');
    assert.match((error as Error).message, /digest mismatch/);
  }
  assert.equal((await otherStore.list()).length, 0, 'no image record was made');
  assert.not.ok(await otherStore.hasBlob(containerd.image!.layerDigest), 'the tampered layer was not committed');
  client.close();
});

test('a blob whose bytes do not match its digest or size is refused, whole or in chunks, and not committed', async () => {
  if (skip !== undefined) return;
  const small = Buffer.from('{"schemaVersion":2}');
  const large = Buffer.alloc(1024 * 1024 + 3, 9); // over one WRITE message: the chunked path
  for (const bytes of [small, large]) {
    const other = Buffer.from(bytes);
    other[other.length - 1] = other[other.length - 1]! ^ 0xff;
    const descriptor = { mediaType: 'application/octet-stream', digest: sha256Digest(bytes), size: bytes.length };
    await store.client.withLease(async (lease) => {
      await store.writeBlob(descriptor, other, { lease, what: `blob of ${bytes.length} bytes` }).then(
        () => assert.unreachable('committed bytes that do not hash to the digest'),
        (error: unknown) => {
          assert.is((error as ImageError).code, 'digest-mismatch', String(error));
          assert.match((error as Error).message, /digest mismatch/);
        },
      );
      await store.writeBlob(descriptor, bytes.subarray(1), { lease, what: `blob of ${bytes.length} bytes` }).then(
        () => assert.unreachable('committed a blob shorter than its descriptor'),
        (error: unknown) => assert.match((error as Error).message, /got \d+ bytes, the descriptor says/),
      );
      assert.not.ok(await store.hasBlob(descriptor.digest), 'nothing was committed');
      await store.writeBlob(descriptor, bytes, { lease });
      assert.ok(await store.hasBlob(descriptor.digest), 'the right bytes are committed');
    });
  }
});

test('a registry that does not answer is registry-unreachable, naming the host and the reason', async () => {
  if (skip !== undefined) return;
  const closed = await new Promise<number>((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
  try {
    await new RegistryClient({ images: store }).pull(`127.0.0.1:${closed}/hivemind/busybox:v1`);
    assert.unreachable('a pull from a closed port must be refused');
  } catch (error) {
    assert.is((error as ImageError).code, 'registry-unreachable', String(error));
    assert.match((error as Error).message, `cannot reach the registry at 127.0.0.1:${closed}: ECONNREFUSED`);
  }
});

test('a missing tag is a clear not-found', async () => {
  if (skip !== undefined) return;
  try {
    await new RegistryClient({ images: store }).pull(`${registry.host}/hivemind/busybox:nope`);
    assert.unreachable('a missing tag must be refused');
  } catch (error) {
    assert.is((error as ImageError).code, 'image-not-found');
  }
});

test.run();
