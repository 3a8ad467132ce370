/**
 * What the API port answers under `/ui`: the web UI's files, from a set
 * read once (ui-files.ts). Deterministic: the same files and request give
 * the same answer, with no I/O (tested in src/ui/test/ui-answer.test.ts).
 *
 * A request names a file only by a key of that set (`/ui/main.js`), never
 * by a path on disk, so no request can reach another file (`..`, `%2f` and
 * the like are simply names not in the set). Each file carries a strong
 * ETag from its content; answers are revalidated (`Cache-Control:
 * no-cache`), so an upgraded agent's files are fetched at once and unchanged
 * ones cost a 304.
 */
import { assert } from '../../consensus/core/assert.js';

/** Where the UI is served on the API port. */
export const UI_PATH = '/ui';

/** One file of the UI, ready to send. */
export interface UiFile {
  body: Uint8Array;
  /** `Content-Type`, charset included for text. */
  contentType: string;
  /** The strong ETag of `body` (quoted). */
  etag: string;
}

/** The UI's files by name (`index.html`, `main.js`): flat, no folders. */
export type UiFiles = ReadonlyMap<string, UiFile>;

/** A request under `/ui`, as far as the answer depends on it. */
export interface UiRequest {
  method: string;
  /** The URL's path, `/ui` or starting with `/ui/`. */
  pathname: string;
  /** The `If-None-Match` header, if sent. */
  ifNoneMatch: string | undefined;
}

/** The answer: status, headers, body (empty for 304, 3xx and HEAD is the sender's business). */
export interface UiAnswer {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

/**
 * What the UI's pages may do: load their own scripts, styles and images, and
 * call this node's API (`connect-src 'self'`); nothing inline, nothing from
 * elsewhere, no framing.
 */
export const UI_CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': UI_CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

/** Whether `pathname` is the UI's (and so answered by `answerUi`, not the API's routes). */
export function isUiPath(pathname: string): boolean {
  return pathname === UI_PATH || pathname.startsWith(`${UI_PATH}/`);
}

/** The answer to `request` from `files`. `files` empty means the UI was not built. */
export function answerUi(files: UiFiles, request: UiRequest): UiAnswer {
  assert(isUiPath(request.pathname), () => `answerUi called for ${request.pathname}`);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return text(405, `${request.pathname} takes GET or HEAD, not ${request.method.slice(0, 20)}`, { Allow: 'GET, HEAD' });
  }
  // Relative links in the page (`main.js`) resolve under `/ui/` only.
  if (request.pathname === UI_PATH) return text(308, 'the UI is at /ui/', { Location: `${UI_PATH}/` });
  if (files.size === 0) return text(503, 'the web UI is not built on this node: `npm run build` compiles it (the API works without it)');
  const name = request.pathname.slice(UI_PATH.length + 1);
  const file = files.get(name === '' ? 'index.html' : name);
  if (file === undefined) return text(404, `the UI has no file ${JSON.stringify(name.slice(0, 100))}; open ${UI_PATH}/`);
  const headers = { ...SECURITY_HEADERS, 'Content-Type': file.contentType, ETag: file.etag, 'Cache-Control': 'no-cache' };
  // A 304's Content-Length, if any, must be the 200's (RFC 9110, 8.6): the sender would otherwise say 0.
  if (etagMatches(request.ifNoneMatch, file.etag)) return { status: 304, headers: { ...headers, 'Content-Length': String(file.body.length) }, body: new Uint8Array(0) };
  return { status: 200, headers, body: file.body };
}

/** Whether `If-None-Match` (a list of tags, weak ones included, or `*`) names `etag`. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed === etag || trimmed === `W/${etag}`;
  });
}

function text(status: number, message: string, extra: Record<string, string> = {}): UiAnswer {
  return { status, headers: { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...extra }, body: new TextEncoder().encode(`${message}\n`) };
}
