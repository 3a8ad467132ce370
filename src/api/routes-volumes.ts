/**
 * Volume data routes: snapshots, backups, restores and moves. A volume's
 * data is on one node, so these are answered there: any node takes them and
 * passes them on once to the API of the volume's node (`?forwarded=true` marks
 * the hop), over the cluster's TLS with the caller's token, streaming the
 * body both ways.
 *
 * A move is three calls, each safe to repeat (the CLI makes them):
 *   POST .../move {to}       commits `volume.move`: its instances stop and wait
 *   POST .../move/copy       on the source: once they stopped, streams the
 *                            volume's files to PUT .../move/data on the target
 *   POST .../move/end {node} commits `volume.move-end`: the data is on `node`
 *                            (the target, or the source again after a failed copy)
 *
 * The data routes take `?index=N`, the `X-Hivemind-Index` of the caller's
 * last write: they wait (up to SETTLE_WAIT_MS) until this node has applied
 * it, so a copy asked right after its `move` on a follower, or a restore
 * right after its `create`, finds what was written.
 */
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { VolumeError, type VolumeSnapshot } from '../executor/local-volumes.js';
import { VOLUME_ARCHIVE_CONTENT_TYPE } from '../executor/volume-archive.js';
import type { NodeVolumes } from '../node/capabilities.js';
import type { Volume } from '../state/types.js';
import { ApiCode, ApiError, invalidArgument } from './errors.js';
import { checkName, checkNodeId, queryBoolean, queryInteger, queryNodeId } from './input.js';
import { serve, type Answer, type Route, type RouteContext } from './router.js';

/** The largest archive a restore or a move's target takes. */
export const VOLUME_ARCHIVE_BYTES_MAX = 2 ** 40;
/** Body types of a volume archive. */
export const VOLUME_ARCHIVE_CONTENT_TYPES = [VOLUME_ARCHIVE_CONTENT_TYPE, 'application/octet-stream'] as const;
/** How long a move's source waits for the volume's workloads to stop. */
export const MOVE_STOP_WAIT_MS = 120_000;
/** How long a data route waits for its `?index` to be applied here. */
export const SETTLE_WAIT_MS = 10_000;

/** Waits until this node has applied the `index` the caller gave (see the module comment). */
async function settle(context: RouteContext): Promise<void> {
  const index = queryInteger(context.query, 'index', { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (index === undefined) return;
  const reached = await context.backend.waitBeyond(index - 1, SETTLE_WAIT_MS, context.signal);
  if (reached !== true) throw new ApiError(503, ApiCode.unavailable, `node ${context.backend.nodeId} has not applied index ${index} within ${SETTLE_WAIT_MS / 1000} s; retry`);
}

function keeperOf(context: RouteContext): NodeVolumes {
  const volumes = context.backend.capabilities().volumes;
  if (volumes === undefined) throw new ApiError(503, ApiCode.unavailable, `node ${context.backend.nodeId} runs no executor, so it holds no volumes`);
  return volumes;
}

function volumeOf(context: RouteContext): Volume {
  const tenant = checkName(context.params.tenant!, 'tenant');
  const name = checkName(context.params.name!, 'name');
  const volume = context.backend.machine.volume(tenant, name);
  if (volume === undefined) throw new ApiError(404, ApiCode.notFound, `tenant "${tenant}" has no volume "${name}"`, 'name');
  return volume;
}

/** A VolumeError as an answer: 409 when trying again later may pass, 400 else. */
function volumeAnswer(error: unknown): never {
  if (error instanceof VolumeError) throw new ApiError(error.retryable ? 409 : 400, error.retryable ? ApiCode.conflict : ApiCode.invalidArgument, error.message);
  throw error;
}

/**
 * Where the request is answered: here (undefined), or the node holding the
 * volume's data (`node`), unless the request was forwarded already.
 */
function remoteNode(context: RouteContext, node: string | undefined, what: string): { node: string; address: string } | undefined {
  if (queryBoolean(context.query, 'forwarded') || node === undefined || node === context.backend.nodeId) return undefined;
  const address = context.backend.machine.node(node)?.addresses.api;
  if (address === undefined) throw new ApiError(503, ApiCode.unavailable, `${what} is on node ${node}, whose API address is unknown`);
  return { node, address };
}

/** Passes the request on to `target`'s API (the caller's token, `forwarded=true`), streaming its answer back. */
async function forward(context: RouteContext, target: { node: string; address: string }, options: { method: 'GET' | 'POST' | 'PUT' | 'DELETE'; path: string; body?: AsyncIterable<Uint8Array>; contentType?: string }): Promise<Answer> {
  const search = new URLSearchParams(context.query);
  search.set('forwarded', 'true');
  const headers: Record<string, string> = {};
  if (context.authorization) headers.authorization = context.authorization;
  if (options.contentType) headers['content-type'] = options.contentType;
  let response;
  try {
    response = await context.peers.request(target.node, target.address, `${options.path}?${search}`, {
      method: options.method,
      headers,
      body: options.body === undefined ? null : Readable.from(options.body),
      signal: context.signal,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (error) {
    throw new ApiError(502, ApiCode.unavailable, `cannot reach node ${target.node} at ${target.address}: ${(error as Error).message}`);
  }
  const contentType = typeof response.headers['content-type'] === 'string' ? response.headers['content-type'] : 'application/json';
  if (response.statusCode === 200 && !contentType.startsWith('application/json')) return { status: 200, stream: response.body as AsyncIterable<Uint8Array>, contentType };
  return { status: response.statusCode, text: Buffer.from(await response.body.arrayBuffer()), contentType };
}

function pathOf(volume: Volume, rest: string): string {
  return `/v1/volumes/${encodeURIComponent(volume.tenant)}/${encodeURIComponent(volume.name)}${rest}`;
}

function showSnapshot(snapshot: VolumeSnapshot): VolumeSnapshot & { takenAt: string } {
  return { ...snapshot, takenAt: new Date(snapshot.takenAtMs).toISOString() };
}

function snapshotIdParam(context: RouteContext, key: 'id' | 'snapshot', from: 'params' | 'query'): string | undefined {
  const value = from === 'params' ? context.params[key] : (context.query.get(key) ?? undefined);
  if (value === undefined) return undefined;
  if (!/^\d{8}T\d{9}Z$/.test(value)) throw invalidArgument(key, `${key} must be a snapshot id such as 20261205T063000123Z (see \`hivemind volumes snapshots NAME\`), got ${JSON.stringify(value.slice(0, 64))}`);
  return value;
}

function nodeField(context: RouteContext, field: string): string {
  const value = (context.body as Record<string, unknown> | undefined)?.[field];
  if (typeof value !== 'string') throw invalidArgument(field, `${field} must be a node id`);
  return checkNodeId(value, field);
}

/** The volume data routes (see the module comment). */
export const volumeDataRoutes: Route[] = [
  serve('GET /v1/volumes/:tenant/:name/snapshots', {
    async handle(context) {
      await settle(context);
      const volume = volumeOf(context);
      const remote = remoteNode(context, volume.node, `volume "${volume.name}"`);
      if (remote) return forward(context, remote, { method: 'GET', path: pathOf(volume, '/snapshots') });
      if (volume.node === undefined) return { status: 200, json: { snapshots: [] } };
      const snapshots = await keeperOf(context).snapshots(volume.tenant, volume.name).catch(volumeAnswer);
      return { status: 200, json: { node: context.backend.nodeId, snapshots: snapshots.map(showSnapshot) } };
    },
  }),
  serve('POST /v1/volumes/:tenant/:name/snapshots', {
    async handle(context) {
      await settle(context);
      const volume = volumeOf(context);
      const remote = remoteNode(context, volume.node, `volume "${volume.name}"`);
      if (remote) return forward(context, remote, { method: 'POST', path: pathOf(volume, '/snapshots') });
      const snapshot = await keeperOf(context).snapshot(volume.tenant, volume.name, Date.now()).catch(volumeAnswer);
      context.backend.log(`volume ${volume.tenant}/${volume.name}: snapshot ${snapshot.id} taken for ${context.actor}`);
      return { status: 200, json: { node: context.backend.nodeId, snapshot: showSnapshot(snapshot) } };
    },
  }),
  serve('DELETE /v1/volumes/:tenant/:name/snapshots/:id', {
    async handle(context) {
      await settle(context);
      const volume = volumeOf(context);
      const id = snapshotIdParam(context, 'id', 'params')!;
      const remote = remoteNode(context, volume.node, `volume "${volume.name}"`);
      if (remote) return forward(context, remote, { method: 'DELETE', path: pathOf(volume, `/snapshots/${id}`) });
      const deleted = await keeperOf(context).deleteSnapshot(volume.tenant, volume.name, id).catch(volumeAnswer);
      if (!deleted) throw new ApiError(404, ApiCode.notFound, `volume "${volume.name}" has no snapshot ${id}`, 'id');
      return { status: 200, json: { node: context.backend.nodeId, deleted: id } };
    },
  }),
  serve('GET /v1/volumes/:tenant/:name/backup', {
    async handle(context) {
      await settle(context);
      const volume = volumeOf(context);
      const snapshotId = snapshotIdParam(context, 'snapshot', 'query');
      const remote = remoteNode(context, volume.node, `volume "${volume.name}"`);
      if (remote) return forward(context, remote, { method: 'GET', path: pathOf(volume, '/backup') });
      const stream = await keeperOf(context).backup(volume.tenant, volume.name, snapshotId === undefined ? {} : { snapshotId }).catch(volumeAnswer);
      return { status: 200, stream, contentType: VOLUME_ARCHIVE_CONTENT_TYPE };
    },
  }),
  serve('PUT /v1/volumes/:tenant/:name/restore', {
    contentTypes: VOLUME_ARCHIVE_CONTENT_TYPES,
    bytesMax: VOLUME_ARCHIVE_BYTES_MAX,
    async upload(context, body) {
      await settle(context);
      const volume = volumeOf(context);
      // Bound: restored where its data is. Else on the node asked for, or this one.
      const node = volume.node ?? queryNodeId(context.query, 'node');
      if (node !== undefined && context.backend.machine.node(node) === undefined) throw new ApiError(404, ApiCode.notFound, `no node ${node} in the cluster`, 'node');
      const remote = remoteNode(context, node, `volume "${volume.name}"`);
      if (remote) return forward(context, remote, { method: 'PUT', path: pathOf(volume, '/restore'), body, contentType: VOLUME_ARCHIVE_CONTENT_TYPE });
      await keeperOf(context).restore(volume.tenant, volume.name, body, context.signal).catch(volumeAnswer);
      return { status: 200, json: { node: context.backend.nodeId, tenant: volume.tenant, name: volume.name } };
    },
  }),
  serve('POST /v1/volumes/:tenant/:name/move', {
    async write(context) {
      const tenant = checkName(context.params.tenant!, 'tenant');
      const name = checkName(context.params.name!, 'name');
      return context.commit([{ type: 'volume.move', tenant, name, to: nodeField(context, 'to') }]);
    },
  }),
  serve('POST /v1/volumes/:tenant/:name/move/end', {
    async write(context) {
      const tenant = checkName(context.params.tenant!, 'tenant');
      const name = checkName(context.params.name!, 'name');
      return context.commit([{ type: 'volume.move-end', tenant, name, node: nodeField(context, 'node') }]);
    },
  }),
  serve('POST /v1/volumes/:tenant/:name/move/copy', {
    async handle(context) {
      await settle(context);
      const volume = volumeOf(context);
      if (volume.moving === undefined) throw new ApiError(409, ApiCode.conflict, `volume "${volume.name}" is not being moved (start with POST ${pathOf(volume, '/move')})`, 'name');
      const remote = remoteNode(context, volume.node, `volume "${volume.name}"`);
      if (remote) return forward(context, remote, { method: 'POST', path: pathOf(volume, '/move/copy') });
      const target = context.backend.machine.node(volume.moving);
      if (target === undefined) throw new ApiError(409, ApiCode.conflict, `volume "${volume.name}" is moving to node ${volume.moving}, which is no longer in the cluster; end the move on ${volume.node}`, 'name');
      const archive = await keeperOf(context).archiveForMove(volume.tenant, volume.name, { waitMs: MOVE_STOP_WAIT_MS, sleep: (ms) => sleep(ms), nowMs: () => Date.now() }).catch(volumeAnswer);
      let bytes = 0;
      const counted = (async function* () {
        for await (const chunk of archive) {
          bytes += chunk.byteLength;
          yield chunk;
        }
      })();
      const sent = await forward(context, { node: target.id, address: target.addresses.api }, { method: 'PUT', path: pathOf(volume, '/move/data'), body: counted, contentType: VOLUME_ARCHIVE_CONTENT_TYPE });
      if (sent.status !== 200) return sent;
      context.backend.log(`volume ${volume.tenant}/${volume.name}: copied ${bytes} bytes (compressed) to node ${target.id}`);
      return { status: 200, json: { from: context.backend.nodeId, to: target.id, archiveBytes: bytes } };
    },
  }),
  serve('PUT /v1/volumes/:tenant/:name/move/data', {
    contentTypes: VOLUME_ARCHIVE_CONTENT_TYPES,
    bytesMax: VOLUME_ARCHIVE_BYTES_MAX,
    async upload(context, body) {
      await settle(context);
      const volume = volumeOf(context);
      await keeperOf(context).receive(volume.tenant, volume.name, body, context.signal).catch(volumeAnswer);
      return { status: 200, json: { node: context.backend.nodeId, tenant: volume.tenant, name: volume.name } };
    },
  }),
];
