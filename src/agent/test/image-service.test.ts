// The Images gRPC service end to end, on loopback between two real
// containerds: an image of several write chunks (busybox and 6 MiB of
// random bytes, so the content write's reused buffers go round more than
// once) is served from one node's content store through
// `imagesServiceForServer` and fetched into the other through
// `remoteImageShare`; every blob arrives byte for byte, and the image
// unpacks. Reads abandoned by their caller after the first chunk leave the
// service serving, with nothing logged as failed.
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ContainerdImageShare, fetchFromPeer } from '../../executor/containerd/image-share.js';
import { ImageStore, type ManifestDocument } from '../../executor/containerd/images.js';
import { buildOciLayout } from '../../executor/containerd/oci-layout.js';
import { TestContainerd, skipReason } from '../../executor/containerd/test/harness.js';
import type { ImageShare } from '../../node/image-share.js';
import { routeRawStreams } from '../../../consensus/transport-grpc.js';
import { imagesServiceForServer, remoteImageShare } from '../image-service.js';

const skip = skipReason();
const holder = new TestContainerd();
const fetcher = new TestContainerd();
const server = new grpc.Server();
let work = '';
let name = '';
let holderStore: ImageStore;
let fetcherStore: ImageStore;
let remote: { images: ImageShare; close(): void } | undefined;
const served: string[] = [];

async function readAll(share: ImageShare, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of share.read(digest)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the image service tests: ${skip}`);
    return;
  }
  await holder.start();
  await fetcher.start();
  holderStore = new ImageStore({ client: holder.client! });
  fetcherStore = new ImageStore({ client: fetcher.client! });
  work = await mkdtemp('/tmp/hmis-');
  const rootfs = join(work, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  await symlink('busybox', join(rootfs, 'bin', 'sh'));
  await writeFile(join(rootfs, 'payload'), randomBytes(6 * 1024 * 1024));
  const archive = join(work, 'image.tar');
  await buildOciLayout({ rootfsDir: rootfs, outputPath: archive, name: 'hivemind.local/service-test:v1', config: { cmd: ['sh'] } });
  [name] = (await holderStore.importArchive(archive)) as [string];
  const service = imagesServiceForServer({
    share: () => new ContainerdImageShare(() => holderStore),
    authenticate: () => ({ ok: true, nodeId: 'fetcher' }),
    onRejected: () => undefined,
    log: (line) => served.push(line),
  });
  server.addService(service.definition, service.implementation);
  const routed = routeRawStreams(server, service.rawStreams);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  assert.ok(routed(), 'Read is routed past grpc-js');
  remote = remoteImageShare(`127.0.0.1:${port}`, 'holder', { credentials: grpc.credentials.createInsecure() });
});

test.after(async () => {
  remote?.close();
  server.forceShutdown();
  await fetcher.stop();
  await holder.stop();
  if (work !== '') await rm(work, { recursive: true, force: true });
});

test('a layer of several chunks read through the service is the layer in the store, byte for byte', async () => {
  if (skip !== undefined) return;
  const target = await holderStore.getImage(name);
  const manifest = JSON.parse((await holderStore.readBlob(target.digest)).toString('utf8')) as ManifestDocument;
  const layer = manifest.layers[0]!;
  assert.ok(layer.size > 5 * 1024 * 1024, `the layer has ${layer.size} bytes: more than the four reused write buffers hold`);
  const direct = await readAll(new ContainerdImageShare(() => holderStore), layer.digest);
  const throughService = await readAll(remote!.images, layer.digest);
  assert.is(throughService.length, layer.size);
  assert.ok(throughService.equals(direct), 'the bytes differ');
});

test('an image fetched through the service is stored and unpacked under its name and digest', async () => {
  if (skip !== undefined) return;
  assert.ok(await fetchFromPeer(fetcherStore, name, { nodeId: 'holder', images: remote!.images }));
  assert.is((await fetcherStore.getImage(name)).digest, (await holderStore.getImage(name)).digest);
  const resolved = await fetcherStore.resolve(name);
  assert.is(resolved.config.Cmd?.[0], 'sh');
});

test('reads abandoned by their caller after the first chunk leave the service serving', async () => {
  if (skip !== undefined) return;
  const target = await holderStore.getImage(name);
  const manifest = JSON.parse((await holderStore.readBlob(target.digest)).toString('utf8')) as ManifestDocument;
  const layer = manifest.layers[0]!;
  for (let attempt = 0; attempt < 8; attempt += 1) {
    for await (const chunk of remote!.images.read(layer.digest)) {
      assert.ok(chunk.length > 0);
      break;
    }
  }
  const again = await readAll(remote!.images, layer.digest);
  assert.is(again.length, layer.size);
  assert.equal(served, [], 'the server logged no failure');
});

test.run();
