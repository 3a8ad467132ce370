/**
 * The browser's API client: every call carries the session's token as the
 * API's `Authorization: Bearer` header; answers are JSON, errors the API's
 * `{ error: { code, message, field } }`. Reads may block (`index`, `wait`),
 * as the CLI's `--watch` does (src/cli/watch.ts).
 */
import type { ErrorBodyView } from './api-types.js';

/** The header every answer carries: the state index it reflects. */
const INDEX_HEADER = 'X-Hivemind-Index';

/** An error answer, or a network failure (status 0, code `unreachable`). */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }

  /** Whether the same request may succeed later (a network failure, a node starting, no leader). */
  get retryable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/** A read's value and the state index it reflects. */
export interface ReadAnswer<T> {
  value: T;
  index: number;
}

/** How a read blocks: until the state passed `index`, at most `waitSeconds`. */
export interface Blocking {
  index: number;
  waitSeconds: number;
}

/** Called with every 401, so the page can send the user back to the login. */
export type UnauthenticatedHandler = (error: ApiRequestError) => void;

/** Calls the API of the node that served the page, with one token. */
export class ApiClient {
  constructor(
    private readonly token: string,
    private readonly onUnauthenticated: UnauthenticatedHandler = () => {},
  ) {}

  /** A GET that answers JSON; with `blocking`, the node answers once its state passed the index. */
  async read<T>(path: string, options: { blocking?: Blocking; signal?: AbortSignal } = {}): Promise<ReadAnswer<T>> {
    let target = path;
    if (options.blocking !== undefined) {
      const separator = path.includes('?') ? '&' : '?';
      target = `${path}${separator}index=${options.blocking.index}&wait=${options.blocking.waitSeconds}s`;
    }
    const response = await this.send('GET', target, undefined, options.signal);
    const value = (await response.json()) as T;
    return { value, index: Number(response.headers.get(INDEX_HEADER) ?? 0) };
  }

  /** A POST (or other write) with a JSON body; answers the parsed JSON. */
  async write<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const response = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body));
    return (await response.json()) as T;
  }

  /** A GET that answers text (`/metrics`). */
  async text(path: string, signal?: AbortSignal): Promise<string> {
    const response = await this.send('GET', path, undefined, signal);
    return response.text();
  }

  /** A GET whose body streams (logs that follow): yields the text as it arrives, until `signal` aborts or the node ends it. */
  async *stream(path: string, signal: AbortSignal): AsyncGenerator<string> {
    const response = await this.send('GET', path, undefined, signal);
    if (response.body === null) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }

  private async send(method: string, path: string, body: string | undefined, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, { method, headers, ...(body === undefined ? {} : { body }), ...(signal === undefined ? {} : { signal }), cache: 'no-store' });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ApiRequestError(0, 'unreachable', `the node did not answer ${method} ${path.split('?')[0]}: ${(error as Error).message}`);
    }
    if (response.ok) return response;
    const failure = await errorOf(response);
    if (failure.status === 401) this.onUnauthenticated(failure);
    throw failure;
  }
}

async function errorOf(response: Response): Promise<ApiRequestError> {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text) as Partial<ErrorBodyView>;
    if (parsed.error !== undefined && typeof parsed.error.message === 'string') {
      return new ApiRequestError(response.status, parsed.error.code ?? 'unknown', parsed.error.message, parsed.error.field);
    }
  } catch {
    // Not JSON: a proxy in between, or a bare 4xx; the text is shown as it is.
  }
  return new ApiRequestError(response.status, 'unknown', `${response.status} ${response.statusText}: ${text.slice(0, 200)}`);
}
