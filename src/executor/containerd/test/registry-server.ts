// A minimal OCI registry on loopback for the pull tests, following the
// distribution spec's read side: GET /v2/, manifests by tag or digest (with
// Content-Type and Docker-Content-Digest), blobs by digest, every request
// behind a Bearer token challenge (WWW-Authenticate realm/service/scope)
// served by its own /token endpoint. Repositories come from OCI layout
// archives; `tamper` flips a byte of a blob as served.
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { indexTar } from '../tar.js';

interface Repository {
  tags: Map<string, string>;
  /** Digest -> bytes and media type (manifests carry theirs). */
  blobs: Map<string, { bytes: Buffer; mediaType?: string }>;
  tampered: Set<string>;
}

const TOKEN = 'test-token-0123456789';

export class TestRegistry {
  private readonly repositories = new Map<string, Repository>();
  private server: Server | undefined;
  /** Requests seen, `METHOD path auth?`. */
  readonly requests: string[] = [];
  port = 0;

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Serves the OCI layout archive at `archivePath` as `repository:tag`; `tamperLayers` corrupts every layer blob. */
  async addRepository(repository: string, tag: string, archivePath: string, options: { tamperLayers?: boolean } = {}): Promise<void> {
    const archive = await readFile(archivePath);
    const entries = await indexTar(archivePath);
    const read = (name: string): Buffer => {
      const entry = entries.find((candidate) => candidate.name === name);
      if (entry === undefined) throw new Error(`no ${name} in ${archivePath}`);
      return archive.subarray(entry.offset, entry.offset + entry.size);
    };
    const index = JSON.parse(read('index.json').toString()) as { manifests: Array<{ digest: string; mediaType: string }> };
    const repo: Repository = { tags: new Map(), blobs: new Map(), tampered: new Set() };
    for (const entry of entries) {
      const match = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(entry.name);
      if (match) repo.blobs.set(`sha256:${match[1]}`, { bytes: Buffer.from(read(entry.name)) });
    }
    const manifest = index.manifests[0]!;
    repo.blobs.get(manifest.digest)!.mediaType = manifest.mediaType;
    repo.tags.set(tag, manifest.digest);
    if (options.tamperLayers) {
      const document = JSON.parse(repo.blobs.get(manifest.digest)!.bytes.toString()) as { layers: Array<{ digest: string }> };
      for (const layer of document.layers) repo.tampered.add(layer.digest);
    }
    this.repositories.set(repository, repo);
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', `http://${this.host}`);
      const authorized = request.headers.authorization === `Bearer ${TOKEN}`;
      this.requests.push(`${request.method} ${url.pathname} ${authorized ? 'auth' : 'anon'}`);
      if (url.pathname === '/token') {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
        return;
      }
      const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
      const scope = match ? `repository:${match[1]}:pull` : 'registry:catalog:*';
      if (!authorized) {
        response.writeHead(401, { 'www-authenticate': `Bearer realm="http://${this.host}/token",service="hivemind-test-registry",scope="${scope}"`, 'content-type': 'application/json' });
        response.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
      if (url.pathname === '/v2/' || url.pathname === '/v2') {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{}');
        return;
      }
      const repo = match ? this.repositories.get(match[1]!) : undefined;
      const reference = match?.[3] ?? '';
      const digest = reference.startsWith('sha256:') ? reference : repo?.tags.get(reference);
      const blob = digest !== undefined ? repo?.blobs.get(digest) : undefined;
      if (!match || repo === undefined || blob === undefined || digest === undefined) {
        response.writeHead(404, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ errors: [{ code: match?.[2] === 'blobs' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', message: 'unknown' }] }));
        return;
      }
      let bytes = blob.bytes;
      if (repo.tampered.has(digest)) {
        bytes = Buffer.from(bytes);
        bytes[bytes.length - 2048] = bytes[bytes.length - 2048]! ^ 0xff;
      }
      response.writeHead(200, {
        'content-type': match[2] === 'manifests' ? blob.mediaType ?? 'application/vnd.oci.image.manifest.v1+json' : 'application/octet-stream',
        'content-length': String(bytes.length),
        'docker-content-digest': digest,
      });
      response.end(request.method === 'HEAD' ? undefined : bytes);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (this.server === undefined) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
