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

/**
 * The headers to send upstream, as a flat `[name, value, ...]` list, from a
 * request's raw headers (HTTP/1.1, or HTTP/2 with its pseudo-headers).
 * `keepUpgrade`: keep Connection: upgrade and Upgrade (a WebSocket handshake
 * passed through).
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], forwarded: ForwardedFor, keepUpgrade = false): string[] {
  const named = connectionTokens(rawHeaders);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let host: string | undefined;
  let authority: string | undefined;
  let cookies: string[] | undefined;
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!;
    const value = rawHeaders[index + 1]!;
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === 'cookie') {
      if (cookies === undefined) cookies = [value];
      else cookies.push(value);
      continue;
    }
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue;
    if (lower === 'host') host = value;
    if (HOP_BY_HOP.has(lower) || named.has(lower)) {
      if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) out.push(name, lower === 'connection' ? 'upgrade' : value);
      continue;
    }
    out.push(name, value);
  }
  if (host === undefined && authority !== undefined) out.push('host', (host = authority));
  if (cookies !== undefined) out.push('cookie', cookies.join('; '));
  out.push('x-forwarded-for', forwardedFor === undefined ? forwarded.clientAddress : `${forwardedFor}, ${forwarded.clientAddress}`);
  out.push('x-forwarded-proto', forwarded.protocol);
  if (host !== undefined) out.push('x-forwarded-host', host);
  return out;
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

function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    if (rawHeaders[index]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[index + 1]!.split(',')) tokens.add(token.trim().toLowerCase());
  }
  return tokens;
}
