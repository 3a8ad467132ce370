/**
 * Header rewriting at the proxy: hop-by-hop headers (RFC 9110 7.6.1, and
 * every header the Connection header names) stay on their hop; the request
 * gains X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host.
 * An HTTP/2 request's headers become HTTP/1.1 ones for the backend: the
 * pseudo-headers are dropped, `:authority` becomes the Host (when the
 * request has none), and its Cookie headers are joined into one (RFC 9113
 * 8.2.3). Pure.
 */

/** Headers that belong to one connection, never forwarded. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export interface ForwardedFor {
  /** The client's address as this proxy saw it. */
  readonly clientAddress: string;
  /** `http` (the proxy listens in plain HTTP). */
  readonly protocol: string;
}

/** A request's head as the proxy forwards it: read in one pass over its raw headers. */
export interface ForwardedHead {
  /** The headers to send upstream, as a flat `[name, value, ...]` list. */
  readonly headers: string[];
  /** Its Host header, or HTTP/2's `:authority`; undefined when it has neither. */
  readonly host: string | undefined;
  /** Whether it says it carries a body (a Content-Length above 0, or a Transfer-Encoding). */
  readonly hasBody: boolean;
}

/**
 * A request's head for the backend, from its raw headers (HTTP/1.1, or
 * HTTP/2 with its pseudo-headers), in one pass: the proxy's per-request
 * path reads nothing else of the head unless the app hashes or has an A/B
 * rule (Node builds `request.headers` only when asked). `keepUpgrade`: keep
 * Connection: upgrade and Upgrade (a WebSocket handshake passed through).
 */
export function forwardedHeadOf(rawHeaders: readonly string[], forwarded: ForwardedFor, keepUpgrade = false): ForwardedHead {
  const out: string[] = [];
  let connection: string[] | undefined;
  let forwardedFor: string | undefined;
  let host: string | undefined;
  let authority: string | undefined;
  let cookies: string[] | undefined;
  let hasBody = false;
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!;
    const value = rawHeaders[index + 1]!;
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    const lower = name.toLowerCase();
    switch (lower) {
      case 'cookie':
        if (cookies === undefined) cookies = [value];
        else cookies.push(value);
        continue;
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        continue;
      case 'host':
        if (host === undefined) host = value;
        break;
      case 'content-length':
        if (value !== '0') hasBody = true;
        break;
      case 'transfer-encoding':
        hasBody = true;
        break;
      case 'connection':
        if (connection === undefined) connection = [value];
        else connection.push(value);
        break;
    }
    if (HOP_BY_HOP.has(lower)) {
      if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) out.push(name, lower === 'connection' ? 'upgrade' : value);
      continue;
    }
    out.push(name, value);
  }
  const headers = connection === undefined ? out : withoutNamed(out, connectionTokens(connection), keepUpgrade);
  if (host === undefined && authority !== undefined) headers.push('host', (host = authority));
  if (cookies !== undefined) headers.push('cookie', cookies.join('; '));
  headers.push('x-forwarded-for', forwardedFor === undefined ? forwarded.clientAddress : `${forwardedFor}, ${forwarded.clientAddress}`);
  headers.push('x-forwarded-proto', forwarded.protocol);
  if (host !== undefined) headers.push('x-forwarded-host', host);
  return { headers, host, hasBody };
}

/**
 * The headers to send upstream, as a flat `[name, value, ...]` list, from a
 * request's raw headers (HTTP/1.1, or HTTP/2 with its pseudo-headers).
 * `keepUpgrade`: keep Connection: upgrade and Upgrade (a WebSocket handshake
 * passed through).
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], forwarded: ForwardedFor, keepUpgrade = false): string[] {
  return forwardedHeadOf(rawHeaders, forwarded, keepUpgrade).headers;
}

/** A response's headers without hop-by-hop ones, for `ServerResponse.writeHead`. */
export function downstreamResponseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = new Set<string>();
  for (const value of connection === undefined ? [] : Array.isArray(connection) ? connection : [connection]) {
    for (const token of value.split(',')) named.add(token.trim().toLowerCase());
  }
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** A request's host: its Host header, or HTTP/2's `:authority`; undefined when it has neither. */
export function requestHost(headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const host = headers.host ?? headers[':authority'];
  return Array.isArray(host) ? host[0] : host;
}

/** Whether a request carries a body (a Content-Length above 0, or a Transfer-Encoding). */
export function hasRequestBody(headers: Record<string, string | string[] | undefined>): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

/** Methods whose retry does no harm (RFC 9110 9.2.2). */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The header names that Connection header values name, lower case. */
function connectionTokens(values: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (const value of values) for (const token of value.split(',')) tokens.add(token.trim().toLowerCase());
  return tokens;
}

/** `headers` without those `named` (kept: Upgrade, when `keepUpgrade`). */
function withoutNamed(headers: readonly string[], named: ReadonlySet<string>, keepUpgrade: boolean): string[] {
  const out: string[] = [];
  for (let index = 0; index < headers.length; index += 2) {
    const lower = headers[index]!.toLowerCase();
    if (named.has(lower) && !(keepUpgrade && lower === 'upgrade')) continue;
    out.push(headers[index]!, headers[index + 1]!);
  }
  return out;
}
