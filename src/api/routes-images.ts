/**
 * Image routes: this node's images in its containerd (list, pull, import).
 * Answered by the node that receives them (images are per node), through
 * the executor's containerd runtime.
 *
 * Import takes the path of an OCI image layout archive on the node (the
 * CLI sends an absolute path on the node it runs on). A streamed upload of
 * the archive needs a raw-body route kind in server.ts; until then the
 * archive must be on the node.
 */
import { isAbsolute } from 'node:path';
import { ImageError } from '../executor/containerd/images.js';
import { containerdRuntime } from '../executor/containerd/register.js';
import type { ContainerdRuntime } from '../executor/containerd/containerd-runtime.js';
import { ApiCode, ApiError, invalidArgument } from './errors.js';
import type { Route } from './router.js';

const REFERENCE_CHARS_MAX = 512;

async function runtimeOf(nodeId: string): Promise<ContainerdRuntime> {
  const runtime = containerdRuntime();
  if (runtime === undefined || !(await runtime.available())) {
    throw new ApiError(503, ApiCode.unavailable, `node ${nodeId} has no containerd: install containerd and runc (apt-get install containerd runc) and restart the agent`);
  }
  await runtime.open();
  return runtime;
}

function imageAnswer(error: unknown): never {
  if (error instanceof ImageError) {
    const status = error.code === 'image-not-found' ? 404 : error.code === 'registry' ? 502 : 400;
    throw new ApiError(status, status === 404 ? ApiCode.notFound : status === 502 ? ApiCode.unavailable : ApiCode.invalidArgument, error.message);
  }
  throw error;
}

function stringField(body: unknown, field: string, required: boolean): string | undefined {
  const value = (body as Record<string, unknown> | undefined)?.[field];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '' || value.length > REFERENCE_CHARS_MAX) throw invalidArgument(field, `${field} must be a string of 1 to ${REFERENCE_CHARS_MAX} characters`);
  return value;
}

/** GET /v1/images, POST /v1/images/pull, POST /v1/images/import. */
export const imageRoutes: Route[] = [
  {
    method: 'GET',
    path: '/v1/images',
    kind: 'local',
    async handle(context) {
      const runtime = await runtimeOf(context.backend.nodeId);
      return { status: 200, json: { node: context.backend.nodeId, images: await runtime.images.list() } };
    },
  },
  {
    method: 'POST',
    path: '/v1/images/pull',
    kind: 'write',
    body: { ref: 'required' },
    async write(context) {
      const reference = stringField(context.body, 'ref', true)!;
      const runtime = await runtimeOf(context.backend.nodeId);
      const name = await runtime.pullImage(reference).catch(imageAnswer);
      return { status: 200, json: { node: context.backend.nodeId, images: [name] } };
    },
  },
  {
    method: 'POST',
    path: '/v1/images/import',
    kind: 'write',
    body: { path: 'required', name: 'optional' },
    async write(context) {
      const path = stringField(context.body, 'path', true)!;
      if (!isAbsolute(path)) throw invalidArgument('path', 'path must be an absolute path of an OCI image layout archive on the node');
      const name = stringField(context.body, 'name', false);
      const runtime = await runtimeOf(context.backend.nodeId);
      const names = await runtime.importImage(path, name !== undefined ? { name } : {}).catch(imageAnswer);
      return { status: 200, json: { node: context.backend.nodeId, images: names } };
    },
  },
];
