/**
 * Image references: `[registry/]repository[:tag][@digest]` parsed with
 * Docker's defaults, and the full name an image is stored under. Pure; apart
 * from the registry client so the agent and the API name images without
 * loading the containerd runtime.
 */
import { ImageError } from './image-error.js';

/** A parsed image reference. */
export interface ImageReference {
  /** Registry host[:port], `docker.io` for Docker Hub. */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/** Parses `[registry/]repository[:tag][@digest]` with Docker's defaults (docker.io, library/, latest). */
export function parseReference(reference: string): ImageReference {
  const trimmed = reference.trim();
  if (trimmed === '' || /\s/.test(trimmed)) throw new ImageError('invalid-reference', `"${reference}" is not an image reference`);
  let rest = trimmed;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new ImageError('invalid-reference', `"${reference}": the digest must be sha256:<64 hex digits>`);
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  let registry = 'docker.io';
  if (slash !== -1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    rest = rest.slice(slash + 1);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (registry === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(rest)) throw new ImageError('invalid-reference', `"${reference}": repository "${rest}" is not valid (lower-case letters, digits, . _ - and /)`);
  if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new ImageError('invalid-reference', `"${reference}": tag "${tag}" is not valid (1 to 128 letters, digits, _ . and -, not starting with . or -)`);
  const parsed: ImageReference = { registry, repository: rest };
  if (tag !== undefined || digest === undefined) parsed.tag = tag ?? 'latest';
  if (digest !== undefined) parsed.digest = digest;
  return parsed;
}

/** The full name an image is stored under: `registry/repository:tag` (and `@digest`). */
export function formatReference(reference: ImageReference): string {
  return `${reference.registry}/${reference.repository}${reference.tag !== undefined ? `:${reference.tag}` : ''}${reference.digest !== undefined ? `@${reference.digest}` : ''}`;
}

/** `busybox` -> `docker.io/library/busybox:latest`; full names stay as they are. */
export function normalizeReference(reference: string): string {
  return formatReference(parseReference(reference));
}
