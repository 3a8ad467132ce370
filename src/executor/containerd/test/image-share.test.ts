// Images fetched from a peer, between two real containerds (two test
// "nodes", each with its own content store): an image imported on one is
// copied into the other and unpacked there; a peer that does not hold the
// image says so; a peer that sends a byte of a layer wrong, a layer short
// or too long, or a document whose bytes do not match its digest, is
// refused with a digest error and leaves nothing recorded; a blob the peer lacks is `not-found`.
// An image of several layers is unpacked as its layers land, each snapshot
// on the one below; one whose config and manifest disagree is not recorded.
// A blob is served from containerd's own file of it, and only to a store
// whose namespace holds it (the file system knows no namespaces).
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ImageShare, SharedImageTarget } from '../../../node/image-share.js';
import { ContainerdClient } from '../client.js';
import { ContainerdImageShare, fetchFromPeer } from '../image-share.js';
import { chainIds, ImageError, ImageStore } from '../images.js';
import { MediaType, sha256Digest } from '../oci-layout.js';
import { tarEnd, tarHeader, tarPadding } from '../tar.js';
import { TestContainerd, skipReason } from './harness.js';

const skip = skipReason();
const holder = new TestContainerd();
const fetcher = new TestContainerd();
let holderStore: ImageStore;
let fetcherStore: ImageStore;
let share: ContainerdImageShare;
let name = '';

/** A peer that serves `inner`'s images with one thing changed. */
class AlteredShare implements ImageShare {
  constructor(
    private readonly inner: ImageShare,
    private readonly change: { flipByteOf?: string; substitute?: { asked: string; served: string }; shortenBy?: { digest: string; bytes: number }; append?: { digest: string; bytes: number } },
  ) {}

  describe(image: string): Promise<SharedImageTarget | undefined> {
    return this.inner.describe(image);
  }

  async *read(digest: string): AsyncIterable<Uint8Array> {
    let first = true;
    const served = digest === this.change.substitute?.asked ? this.change.substitute.served : digest;
    if (digest === this.change.shortenBy?.digest || digest === this.change.append?.digest) {
      const chunks: Buffer[] = [];
      for await (const chunk of this.inner.read(served)) chunks.push(Buffer.from(chunk));
      const whole = Buffer.concat(chunks);
      if (digest === this.change.append?.digest) yield* [whole, Buffer.alloc(this.change.append.bytes, 7)];
      else yield whole.subarray(0, whole.length - this.change.shortenBy!.bytes);
      return;
    }
    for await (const chunk of this.inner.read(served)) {
      if (first && digest === this.change.flipByteOf) {
        const copy = Buffer.from(chunk);
        copy[copy.length >> 1] = copy[copy.length >> 1]! ^ 0xff;
        first = false;
        yield copy;
      } else yield chunk;
    }
  }
}

/**
 * A peer holding one image made in memory: `layers` layers, each a tar of
 * one file; `diffIdsListed` of their diff ids in the config (all of them
 * unless given).
 */
function layeredImage(tag: string, layers: number, diffIdsListed = layers): { name: string; share: ImageShare; layerDigests: string[]; diffIds: string[] } {
  const blobs = new Map<string, Buffer>();
  const put = (bytes: Buffer): { digest: string; size: number } => {
    const digest = sha256Digest(bytes);
    blobs.set(digest, bytes);
    return { digest, size: bytes.length };
  };
  const layerBlobs = Array.from({ length: layers }, (_, position) => {
    const content = Buffer.from(`layer ${position} of ${tag}\n`);
    return put(Buffer.concat([tarHeader({ name: `layer-${position}`, type: 'file', size: content.length, mode: 0o644 }), content, tarPadding(content.length), tarEnd()]));
  });
  // Uncompressed layers: a diff id is the layer's own digest.
  const diffIds = layerBlobs.map((layer) => layer.digest);
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: diffIds.slice(0, diffIdsListed) } })));
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, ...config }, layers: layerBlobs.map((layer) => ({ mediaType: MediaType.ociLayer, ...layer })) }));
  const manifest = put(manifestBytes);
  const imageName = `hivemind.local/layered:${tag}`;
  const share: ImageShare = {
    describe: async (image) => (image === imageName ? { mediaType: MediaType.ociManifest, ...manifest } : undefined),
    async *read(digest) {
      const bytes = blobs.get(digest);
      if (bytes === undefined) throw Object.assign(new Error(`blob ${digest} is not here`), { code: 'not-found' });
      // In two pieces, as a stream of chunks arrives.
      yield bytes.subarray(0, bytes.length >> 1);
      yield bytes.subarray(bytes.length >> 1);
    },
  };
  return { name: imageName, share, layerDigests: layerBlobs.map((layer) => layer.digest), diffIds };
}

async function fetcherHolds(image: string): Promise<boolean> {
  try {
    await fetcherStore.getImage(image);
    return true;
  } catch (error) {
    if (error instanceof ImageError && error.code === 'image-not-found') return false;
    throw error;
  }
}

test.before(async () => {
  if (skip !== undefined) {
    console.log(`skipping the peer image tests: ${skip}`);
    return;
  }
  await holder.start();
  await fetcher.start();
  holderStore = new ImageStore({ client: holder.client! });
  fetcherStore = new ImageStore({ client: fetcher.client! });
  [name] = (await holderStore.importArchive(holder.archivePath)) as [string];
  share = new ContainerdImageShare(() => holderStore);
});

test.after(async () => {
  await fetcher.stop();
  await holder.stop();
});

test('a peer that does not hold the image says so, and nothing is recorded', async () => {
  if (skip !== undefined) return;
  assert.is(await share.describe('hivemind.local/nothing:here'), undefined);
  assert.is(await fetchFromPeer(fetcherStore, 'hivemind.local/nothing:here', { nodeId: 'n1', images: share }), undefined);
  assert.is(await fetcherHolds('hivemind.local/nothing:here'), false);
});

test('a blob the peer lacks is not-found; a digest that is not sha256 is refused', async () => {
  if (skip !== undefined) return;
  const missing = `sha256:${'0'.repeat(64)}`;
  const read = async (digest: string) => {
    for await (const _ of share.read(digest)) void _;
  };
  await read(missing).then(
    () => assert.unreachable('read a blob that is not there'),
    (error: unknown) => assert.is((error as { code?: string }).code, 'not-found'),
  );
  await read('md5:abc').then(
    () => assert.unreachable('read with a bad digest'),
    (error: unknown) => assert.match((error as Error).message, /is not a sha256 digest/),
  );
});

test('a blob is served from the file containerd keeps of it, in full; a namespace that does not hold it gets not-found', async () => {
  if (skip !== undefined) return;
  const layer = holder.image!.layerDigest;
  const found = await holderStore.contentFiles.open(layer);
  assert.is(found.kind, 'file', 'the content root is read from Introspection and the blob file opens');
  if (found.kind === 'file') await found.file.close();
  const hash = createHash('sha256');
  let chunks = 0;
  // Each chunk is hashed before the next is asked for: the share reuses its buffer.
  for await (const chunk of share.read(layer)) {
    hash.update(chunk);
    chunks += 1;
  }
  assert.is(`sha256:${hash.digest('hex')}`, layer);
  assert.ok(chunks >= 1);
  const otherClient = new ContainerdClient({ socketPath: holder.own!.socketPath, namespace: 'another-tenant' });
  try {
    await otherClient.ensureNamespace();
    const otherStore = new ImageStore({ client: otherClient });
    assert.is((await otherStore.contentFiles.open(layer)).kind, 'not-found', 'the blob file is there, but not in this namespace');
    const read = async () => {
      for await (const _ of new ContainerdImageShare(() => otherStore).read(layer)) void _;
    };
    await read().then(
      () => assert.unreachable('served a blob of another namespace'),
      (error: unknown) => assert.is((error as { code?: string }).code, 'not-found'),
    );
  } finally {
    otherClient.close();
  }
});

test('a byte of a layer sent wrong is refused with a digest error; the image is not recorded', async () => {
  if (skip !== undefined) return;
  const layer = holder.image!.layerDigest;
  const altered = new AlteredShare(share, { flipByteOf: layer });
  await fetchFromPeer(fetcherStore, name, { nodeId: 'n1', images: altered }).then(
    () => assert.unreachable('took a tampered layer'),
    (error: unknown) => {
      assert.instance(error, ImageError);
      assert.is((error as ImageError).code, 'digest-mismatch');
      assert.match((error as Error).message, new RegExp(`layer ${layer} of ${name} from node n1`));
    },
  );
  assert.is(await fetcherHolds(name), false);
  assert.is(await fetcherStore.hasBlob(layer), false, 'the tampered layer was not committed');
});

test('a layer sent short, or with bytes after its end, is refused with a digest error; nothing is committed', async () => {
  if (skip !== undefined) return;
  const layer = holder.image!.layerDigest;
  for (const change of [{ shortenBy: { digest: layer, bytes: 1 } }, { append: { digest: layer, bytes: 3 } }]) {
    await fetchFromPeer(fetcherStore, name, { nodeId: 'n1', images: new AlteredShare(share, change) }).then(
      () => assert.unreachable(`took a layer changed by ${JSON.stringify(change)}`),
      (error: unknown) => {
        assert.is((error as ImageError).code, 'digest-mismatch', String(error));
        assert.match((error as Error).message, 'shortenBy' in change ? /got \d+ bytes, the descriptor says/ : /is larger than its descriptor/);
      },
    );
    assert.is(await fetcherHolds(name), false);
    assert.is(await fetcherStore.hasBlob(layer), false, 'the changed layer was not committed');
  }
});

test('a document whose bytes do not match its digest is refused', async () => {
  if (skip !== undefined) return;
  const lying = new AlteredShare(share, { substitute: { asked: holder.image!.configDigest, served: holder.image!.manifestDigest } });
  await fetchFromPeer(fetcherStore, name, { nodeId: 'n1', images: lying }).then(
    () => assert.unreachable('took an image whose bytes do not match the named digest'),
    (error: unknown) => assert.is((error as ImageError).code, 'digest-mismatch'),
  );
  assert.is(await fetcherHolds(name), false);
});

test('an image imported on one node is copied to another, unpacked, under the same name and digest', async () => {
  if (skip !== undefined) return;
  assert.ok(await fetchFromPeer(fetcherStore, name, { nodeId: 'n1', images: share }));
  const here = await fetcherStore.getImage(name);
  const there = await holderStore.getImage(name);
  assert.is(here.digest, there.digest);
  const resolved = await fetcherStore.resolve(name);
  assert.is(resolved.manifestDigest, holder.image!.manifestDigest);
  assert.ok(await fetcherStore.hasBlob(holder.image!.layerDigest));
  // Fetching again is a no-op that still succeeds.
  assert.ok(await fetchFromPeer(fetcherStore, name, { nodeId: 'n1', images: share }));
});

test('an image of three layers is fetched and unpacked as its layers land, each snapshot on the one below', async () => {
  if (skip !== undefined) return;
  const image = layeredImage('three', 3);
  assert.ok(await fetchFromPeer(fetcherStore, image.name, { nodeId: 'n1', images: image.share }));
  const chain = chainIds(image.diffIds);
  const resolved = await fetcherStore.resolve(image.name);
  assert.is(resolved.chainId, chain[2]);
  for (const [position, chainId] of chain.entries()) {
    const info = await fetcherStore.client.unary<{ info: { name: string; parent: string; kind: string } }>('snapshots', 'Stat', { snapshotter: fetcherStore.snapshotter, key: chainId });
    assert.is(info.info.parent, position === 0 ? '' : chain[position - 1], `snapshot ${position} sits on the one below`);
    assert.is(info.info.kind, 'COMMITTED');
    assert.ok(await fetcherStore.hasBlob(image.layerDigests[position]!));
  }
});

test('an image whose config lists fewer layers than its manifest is refused and not recorded', async () => {
  if (skip !== undefined) return;
  const image = layeredImage('disagreeing', 2, 1);
  await fetchFromPeer(fetcherStore, image.name, { nodeId: 'n1', images: image.share }).then(
    () => assert.unreachable('recorded an image whose config and manifest disagree'),
    (error: unknown) => {
      assert.is((error as ImageError).code, 'bad-archive', String(error));
      assert.match((error as Error).message, /its config lists 1 layers, its manifest 2/);
    },
  );
  assert.is(await fetcherHolds(image.name), false);
});

test.run();
