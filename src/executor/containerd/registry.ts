/**
 * Pulls images from OCI registries (the distribution spec) over HTTPS, or
 * plain HTTP for loopback and listed insecure registries, with undici:
 * the manifest by tag or digest (index -> this node's platform), then the
 * config and layers by digest, every one checked against its digest before
 * containerd commits it. Bearer token auth: a 401 with
 * `WWW-Authenticate: Bearer realm=...,service=...,scope=...` gets a token
 * from the realm and the request is retried once with it.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ImageError } from './image-error.js';
import type { Descriptor, ImageStore } from './images.js';
import { formatReference, parseReference, type ImageReference } from './reference.js';
import { MediaType } from './oci-layout.js';

const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');
/** Largest manifest or config fetched into memory. */
const DOCUMENT_BYTES_MAX = 4 * 1024 * 1024;
const REDIRECTS_MAX = 5;
const REQUEST_TIMEOUT_MS = 60_000;

/** undici's `request`, loaded by the first pull: an agent that pulls nothing never loads undici (about 10 MiB of RSS). */
async function request(url: string | URL, options: { dispatcher?: Dispatcher } & Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & Partial<Pick<Dispatcher.RequestOptions, 'method'>>): Promise<Dispatcher.ResponseData> {
  const undici = await import('undici');
  return undici.request(url, options);
}

export { formatReference, normalizeReference, parseReference, type ImageReference } from './reference.js';

/** Parses a `WWW-Authenticate: Bearer k="v",...` challenge. */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  const match = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (match === null) return undefined;
  const parameters: Record<string, string> = {};
  for (const part of match[1]!.matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) parameters[part[1]!.toLowerCase()] = part[2]!;
  return parameters;
}

/** Settings of a RegistryClient. */
export interface RegistryClientOptions {
  images: ImageStore;
  /** Registries (`host:port`) reached over plain HTTP. Loopback registries always are. */
  insecureRegistries?: string[];
}

/** One pull session (tokens are cached per scope within it). */
export class RegistryClient {
  private readonly images: ImageStore;
  private readonly insecure: Set<string>;
  private readonly tokens = new Map<string, string>();

  constructor(options: RegistryClientOptions) {
    this.images = options.images;
    this.insecure = new Set(options.insecureRegistries ?? []);
  }

  private baseUrl(registry: string): string {
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    const hostname = host.replace(/:\d+$/, '');
    const plain = this.insecure.has(registry) || hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  private async token(challenge: Record<string, string>, signal?: AbortSignal): Promise<string> {
    const realm = challenge.realm;
    if (realm === undefined) throw new ImageError('registry', 'the registry asked for a bearer token without naming its realm');
    const cacheKey = `${realm} ${challenge.service ?? ''} ${challenge.scope ?? ''}`;
    const cached = this.tokens.get(cacheKey);
    if (cached !== undefined) return cached;
    const url = new URL(realm);
    if (challenge.service) url.searchParams.set('service', challenge.service);
    if (challenge.scope) url.searchParams.set('scope', challenge.scope);
    const response = await reach(url.toString(), () => request(url, { method: 'GET', headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, ...(signal ? { signal } : {}) }), signal);
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new ImageError('registry', `the token service ${url.origin}${url.pathname} answered ${response.statusCode}: ${text.slice(0, 200)}`);
    const body = JSON.parse(text) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new ImageError('registry', `the token service ${url.origin}${url.pathname} gave no token`);
    this.tokens.set(cacheKey, token);
    return token;
  }

  /** GET with bearer auth and redirects; answers the response with an unread body. */
  private async get(url: string, accept: string | undefined, signal?: AbortSignal): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; body: Readable & { text(): Promise<string>; dump(): Promise<void> } }> {
    let target = url;
    let authorization: string | undefined;
    let retriedAuth = false;
    for (let hop = 0; hop <= REDIRECTS_MAX; hop += 1) {
      const headers: Record<string, string> = {};
      if (accept !== undefined) headers.accept = accept;
      if (authorization !== undefined && new URL(target).host === new URL(url).host) headers.authorization = authorization;
      const response = await reach(target, () => request(target, { method: 'GET', headers, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, ...(signal ? { signal } : {}) }), signal);
      if (response.statusCode === 401 && !retriedAuth) {
        await response.body.dump();
        const header = response.headers['www-authenticate'];
        const challenge = parseBearerChallenge(Array.isArray(header) ? header[0]! : header ?? '');
        if (challenge === undefined) throw new ImageError('registry', `${new URL(url).host} wants credentials Hivemind does not have (${String(header ?? 'no challenge')})`);
        authorization = `Bearer ${await this.token(challenge, signal)}`;
        retriedAuth = true;
        hop -= 1;
        continue;
      }
      if (response.statusCode >= 300 && response.statusCode < 400 && response.headers.location) {
        await response.body.dump();
        target = new URL(String(response.headers.location), target).toString();
        continue;
      }
      return response as never;
    }
    throw new ImageError('registry', `${url}: more than ${REDIRECTS_MAX} redirects`);
  }

  private async fetchBytes(url: string, accept: string | undefined, what: string, signal?: AbortSignal): Promise<{ bytes: Buffer; contentType?: string; digestHeader?: string }> {
    const response = await this.get(url, accept, signal);
    if (response.statusCode !== 200) {
      const text = await response.body.text().catch(() => '');
      if (response.statusCode === 404) throw new ImageError('image-not-found', `${what} not found in the registry (${url})`);
      throw new ImageError('registry', `${what}: the registry answered ${response.statusCode}: ${text.slice(0, 200)}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of response.body) {
      total += (chunk as Buffer).length;
      if (total > DOCUMENT_BYTES_MAX) {
        response.body.destroy();
        throw new ImageError('registry', `${what} is larger than ${DOCUMENT_BYTES_MAX} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    const contentType = response.headers['content-type'];
    const digestHeader = response.headers['docker-content-digest'];
    return { bytes: Buffer.concat(chunks), ...(typeof contentType === 'string' ? { contentType: contentType.split(';')[0]!.trim() } : {}), ...(typeof digestHeader === 'string' ? { digestHeader } : {}) };
  }

  /**
   * Pulls `reference` into the content store, records the image and unpacks
   * it. Answers the name it is stored under (normalized). Rejects with an
   * ImageError: `digest-mismatch` when any byte does not match its digest.
   */
  async pull(reference: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    const parsed = parseReference(reference);
    const name = formatReference(parsed);
    const base = `${this.baseUrl(parsed.registry)}/v2/${parsed.repository}`;
    const signal = options.signal;
    const top = await this.fetchBytes(`${base}/manifests/${parsed.digest ?? parsed.tag}`, MANIFEST_ACCEPT, `manifest of ${name}`, signal);
    const topDigest = `sha256:${createHash('sha256').update(top.bytes).digest('hex')}`;
    if (parsed.digest !== undefined && parsed.digest !== topDigest) throw new ImageError('digest-mismatch', `manifest of ${name}: digest mismatch: got ${topDigest}`);
    if (top.digestHeader !== undefined && top.digestHeader.startsWith('sha256:') && top.digestHeader !== topDigest) throw new ImageError('digest-mismatch', `manifest of ${name}: digest mismatch: the registry says ${top.digestHeader}, the bytes hash to ${topDigest}`);
    const mediaType = (JSON.parse(top.bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? top.contentType ?? MediaType.ociManifest;
    const topDescriptor: Descriptor = { mediaType, digest: topDigest, size: top.bytes.length };
    await this.images.client.withLease(async (lease) => {
      await this.images.storeImage(name, topDescriptor, {
        lease,
        fetchDocument: async <T>(descriptor: Descriptor) => {
          if (descriptor.digest === topDigest) return { bytes: top.bytes, document: JSON.parse(top.bytes.toString('utf8')) as T };
          const isBlob = !descriptor.mediaType.includes('manifest') && !descriptor.mediaType.includes('index');
          const fetched = await this.fetchBytes(`${base}/${isBlob ? 'blobs' : 'manifests'}/${descriptor.digest}`, isBlob ? undefined : MANIFEST_ACCEPT, `${descriptor.mediaType} ${descriptor.digest}`, signal);
          const actual = `sha256:${createHash('sha256').update(fetched.bytes).digest('hex')}`;
          if (actual !== descriptor.digest) throw new ImageError('digest-mismatch', `${descriptor.digest} from ${parsed.registry}: digest mismatch: the bytes hash to ${actual}; refusing it`);
          return { bytes: fetched.bytes, document: JSON.parse(fetched.bytes.toString('utf8')) as T };
        },
        fetchBlob: async (descriptor, labels) => {
          const response = await this.get(`${base}/blobs/${descriptor.digest}`, undefined, signal);
          if (response.statusCode !== 200) {
            await response.body.dump();
            throw new ImageError('registry', `layer ${descriptor.digest} of ${name}: the registry answered ${response.statusCode}`);
          }
          try {
            await this.images.writeBlob(descriptor, response.body as AsyncIterable<Buffer>, { lease, labels, what: `layer ${descriptor.digest} of ${name}`, held: true });
          } finally {
            response.body.destroy();
          }
        },
      });
    });
    return name;
  }
}

/**
 * Runs one request to a registry, turning a failure to get any answer (DNS,
 * refused or reset connection, TLS, timeout) into ImageError
 * `registry-unreachable` that names the host and the reason. An abort by the
 * caller stays what it is.
 */
async function reach<T>(url: string, send: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  try {
    return await send();
  } catch (error) {
    if (signal?.aborted === true || error instanceof ImageError) throw error;
    const cause = (error as { cause?: { code?: string } }).cause;
    const code = (error as NodeJS.ErrnoException).code ?? cause?.code;
    const reason = code ?? (error as Error).message;
    throw new ImageError('registry-unreachable', `cannot reach the registry at ${new URL(url).host}: ${reason}; check the name, that the node has a route to it, or import the image instead (hivemind images import)`);
  }
}
