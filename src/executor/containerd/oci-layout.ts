/**
 * Builds OCI image layout archives (the `oci-layout`, `index.json`,
 * `blobs/sha256/...` tree, as one tar) from a root filesystem folder: one
 * uncompressed layer, an image config (Cmd, Entrypoint, Env, WorkingDir,
 * os/architecture, rootfs diff_ids) and a manifest. `hivemind image import`
 * takes such archives; tests and the executor benchmark build a busybox
 * image with `buildBusyboxImage`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { tarEnd, tarHeader, tarPadding, writeDirectoryEntries } from './tar.js';

/** OCI and Docker media types Hivemind reads and writes. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** The annotation containerd's import reads for the full image name. */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
/** The OCI annotation for the reference (tag) of a manifest in an index. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

/** What the image runs, as in an OCI image config's `config`. */
export interface ImageRunConfig {
  cmd?: string[];
  entrypoint?: string[];
  /** `NAME=value` entries. */
  env?: string[];
  workingDir?: string;
  user?: string;
}

/** Options of `buildOciLayout`. */
export interface BuildLayoutOptions {
  /** The folder that becomes the image's root filesystem. */
  rootfsDir: string;
  /** Where the archive is written. */
  outputPath: string;
  /** The image's name, e.g. `hivemind.local/busybox:latest`. */
  name: string;
  config: ImageRunConfig;
  /** Defaults to amd64 (the only platform Hivemind pulls). */
  architecture?: string;
}

/** What `buildOciLayout` made. */
export interface BuiltLayout {
  name: string;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
  archiveBytes: number;
}

/** `sha256:<hex>` of `bytes`. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function writeChunk(out: Writable, chunk: Buffer): Promise<void> {
  if (chunk.length === 0) return;
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** Builds the layer tar of `rootfsDir` into `path`; answers its digest and size. */
async function buildLayer(rootfsDir: string, path: string): Promise<{ digest: string; size: number }> {
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  let size = 0;
  const sink = async (chunk: Buffer): Promise<void> => {
    hash.update(chunk);
    size += chunk.length;
    await writeChunk(out, chunk);
  };
  await writeDirectoryEntries(rootfsDir, sink);
  await sink(tarEnd());
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** Builds an OCI image layout archive of `options.rootfsDir` at `options.outputPath`. */
export async function buildOciLayout(options: BuildLayoutOptions): Promise<BuiltLayout> {
  const work = await mkdtemp(join(tmpdir(), 'hivemind-layout-'));
  try {
    const layerPath = join(work, 'layer.tar');
    const layer = await buildLayer(options.rootfsDir, layerPath);
    const imageConfig = {
      architecture: options.architecture ?? 'amd64',
      os: 'linux',
      config: {
        ...(options.config.cmd ? { Cmd: options.config.cmd } : {}),
        ...(options.config.entrypoint ? { Entrypoint: options.config.entrypoint } : {}),
        Env: options.config.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        ...(options.config.workingDir ? { WorkingDir: options.config.workingDir } : {}),
        ...(options.config.user ? { User: options.config.user } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      history: [{ created_by: 'hivemind oci-layout', comment: 'root filesystem from a folder' }],
    };
    const configBytes = Buffer.from(JSON.stringify(imageConfig));
    const configDigest = sha256Digest(configBytes);
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
      layers: [{ mediaType: MediaType.ociLayer, digest: layer.digest, size: layer.size }],
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestDigest = sha256Digest(manifestBytes);
    const tag = options.name.includes(':') && !options.name.endsWith(']') ? options.name.slice(options.name.lastIndexOf(':') + 1) : 'latest';
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        {
          mediaType: MediaType.ociManifest,
          digest: manifestDigest,
          size: manifestBytes.length,
          annotations: { [ANNOTATION_IMAGE_NAME]: options.name, [ANNOTATION_REF_NAME]: tag },
          platform: { architecture: imageConfig.architecture, os: 'linux' },
        },
      ],
    };
    await writeLayoutArchive(options.outputPath, [
      { name: 'oci-layout', bytes: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
      { name: 'index.json', bytes: Buffer.from(JSON.stringify(index)) },
      { name: `blobs/sha256/${configDigest.slice(7)}`, bytes: configBytes },
      { name: `blobs/sha256/${manifestDigest.slice(7)}`, bytes: manifestBytes },
      { name: `blobs/sha256/${layer.digest.slice(7)}`, path: layerPath, size: layer.size },
    ]);
    const { size: archiveBytes } = await stat(options.outputPath);
    return { name: options.name, manifestDigest, configDigest, layerDigest: layer.digest, archiveBytes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

type LayoutFile = { name: string; bytes: Buffer } | { name: string; path: string; size: number };

async function writeLayoutArchive(outputPath: string, files: LayoutFile[]): Promise<void> {
  const out = createWriteStream(outputPath);
  for (const directory of ['blobs', 'blobs/sha256']) await writeChunk(out, tarHeader({ name: directory, type: 'directory', size: 0, mode: 0o755 }));
  for (const file of files) {
    const size = 'bytes' in file ? file.bytes.length : file.size;
    await writeChunk(out, tarHeader({ name: file.name, type: 'file', size, mode: 0o644 }));
    if ('bytes' in file) await writeChunk(out, file.bytes);
    else for await (const chunk of createReadStream(file.path)) await writeChunk(out, chunk as Buffer);
    await writeChunk(out, tarPadding(size));
  }
  await writeChunk(out, tarEnd());
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/** The applets the busybox test image links to `/bin/busybox`. */
export const BUSYBOX_APPLETS = ['sh', 'echo', 'sleep', 'httpd', 'nc', 'wget', 'cat', 'ls', 'true', 'false', 'head', 'dd', 'kill', 'id', 'env', 'mkdir'];

/**
 * Builds a busybox image layout archive from a static busybox binary on the
 * node (Debian's `busybox-static`: /bin/busybox): /bin/busybox with its
 * applets as symlinks, /etc/passwd with root and nobody, /tmp, /www.
 * Default command: `sh`.
 */
export async function buildBusyboxImage(options: { outputPath: string; name?: string; busyboxPath?: string }): Promise<BuiltLayout> {
  const rootfs = await mkdtemp(join(tmpdir(), 'hivemind-busybox-'));
  try {
    for (const folder of ['bin', 'etc', 'tmp', 'www', 'proc', 'sys', 'dev', 'run']) await mkdir(join(rootfs, folder));
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await copyFile(options.busyboxPath ?? '/bin/busybox', join(rootfs, 'bin', 'busybox'));
    await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
    for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(rootfs, 'bin', applet));
    await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    await writeFile(join(rootfs, 'www', 'index.html'), 'hello from hivemind busybox\n');
    return await buildOciLayout({ rootfsDir: rootfs, outputPath: options.outputPath, name: options.name ?? 'hivemind.local/busybox:latest', config: { cmd: ['sh'] } });
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
