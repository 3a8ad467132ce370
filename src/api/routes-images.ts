/**
 * Image routes: this node's images in its containerd (list, pull, import).
 * Answered by the node that receives them (images are per node), through
 * the executor's containerd runtime.
 *
 * An OCI image layout archive comes in two ways: streamed as the body of
 * POST /v1/images/upload (what the CLI does, so it works against any node),
 * written to a temporary file under the runtime's state folder, imported,
 * and removed whatever happens; or, when the archive is already on the node,
 * by its path in POST /v1/images/import.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImageError } from '../executor/containerd/image-error.js';
import { parseReference } from '../executor/containerd/reference.js';
import type { NodeImages } from '../node/capabilities.js';
import { ApiCode, ApiError, invalidArgument } from './errors.js';
import { serve, type Route, type RouteContext } from './router.js';

const REFERENCE_CHARS_MAX = 512;
/** The largest image archive POST /v1/images/upload takes. */
export const IMAGE_ARCHIVE_BYTES_MAX = 4 * 2 ** 30;
/** Body types of an uploaded archive (a tar, not compressed). */
export const IMAGE_ARCHIVE_CONTENT_TYPES = ['application/x-tar', 'application/octet-stream'] as const;

async function imagesOf(context: RouteContext): Promise<NodeImages> {
  const images = context.backend.capabilities().images;
  if (images === undefined || !(await images.available())) {
    throw new ApiError(503, ApiCode.unavailable, `node ${context.backend.nodeId} has no containerd: install containerd and runc (apt-get install containerd runc) and restart the agent`);
  }
  return images;
}

/**
 * An image failure as the API answers it: a reference that is not one is
 * the caller's 400 (field `ref`); a registry that cannot be reached, or that
 * answers with an error, is a 502 (the gateway's upstream failed); an image
 * it does not have is a 404; a bad archive or digest is a 400.
 */
function imageAnswer(error: unknown, field = 'ref'): never {
  if (error instanceof ImageError) {
    switch (error.code) {
      case 'invalid-reference':
        throw new ApiError(400, ApiCode.invalidArgument, error.message, field);
      case 'image-not-found':
        throw new ApiError(404, ApiCode.notFound, error.message);
      case 'registry-unreachable':
        throw new ApiError(502, ApiCode.registryUnreachable, error.message);
      case 'registry':
        throw new ApiError(502, ApiCode.registryError, error.message);
      default:
        throw new ApiError(400, ApiCode.invalidArgument, error.message);
    }
  }
  throw error;
}

function stringField(body: unknown, field: string, required: boolean): string | undefined {
  const value = (body as Record<string, unknown> | undefined)?.[field];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '' || value.length > REFERENCE_CHARS_MAX) throw invalidArgument(field, `${field} must be a string of 1 to ${REFERENCE_CHARS_MAX} characters`);
  return value;
}

/** GET /v1/images, POST /v1/images/pull, POST /v1/images/upload, POST /v1/images/import. */
export const imageRoutes: Route[] = [
  serve('GET /v1/images', {
    async handle(context) {
      const images = await imagesOf(context);
      return { status: 200, json: { node: context.backend.nodeId, images: await images.list() } };
    },
  }),
  serve('POST /v1/images/pull', {
    async write(context) {
      const reference = stringField(context.body, 'ref', true)!;
      // A reference that is not one is refused before anything else, on any node.
      try {
        parseReference(reference);
      } catch (error) {
        imageAnswer(error);
      }
      const images = await imagesOf(context);
      const name = await images.pull(reference).catch(imageAnswer);
      return { status: 200, json: { node: context.backend.nodeId, images: [name] } };
    },
  }),
  serve('POST /v1/images/upload', {
    contentTypes: IMAGE_ARCHIVE_CONTENT_TYPES,
    bytesMax: IMAGE_ARCHIVE_BYTES_MAX,
    async upload(context, body) {
      const nameText = context.query.get('name');
      const name = nameText === null ? undefined : stringField({ name: nameText }, 'name', true);
      const images = await imagesOf(context);
      const folder = await images.uploadFolder();
      const archivePath = join(folder, `image-${randomBytes(8).toString('hex')}.tar`);
      try {
        await pipeline(Readable.from(body), createWriteStream(archivePath, { mode: 0o600 }), { signal: context.signal });
        const names = await images.importArchive(archivePath, name !== undefined ? { name } : {}).catch(imageAnswer);
        return { status: 200, json: { node: context.backend.nodeId, images: names } };
      } finally {
        await rm(archivePath, { force: true });
      }
    },
  }),
  serve('POST /v1/images/import', {
    async write(context) {
      const path = stringField(context.body, 'path', true)!;
      if (!isAbsolute(path)) throw invalidArgument('path', 'path must be an absolute path of an OCI image layout archive on the node');
      const name = stringField(context.body, 'name', false);
      const images = await imagesOf(context);
      const names = await images.importArchive(path, name !== undefined ? { name } : {}).catch(imageAnswer);
      return { status: 200, json: { node: context.backend.nodeId, images: names } };
    },
  }),
];
