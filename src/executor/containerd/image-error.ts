/**
 * The error of an image operation, apart from the image store so that the
 * API and the reference parser use it without loading the containerd
 * runtime (an agent that runs no image never loads it).
 */
/** A failed image operation; `code` is stable. */
export class ImageError extends Error {
  override readonly name = 'ImageError';
  constructor(
    /** `invalid-reference`: not an image reference; `registry-unreachable`: no answer from the registry (DNS, connection, timeout); `registry`: it answered, but not with the image. */
    readonly code: 'image-not-found' | 'bad-archive' | 'digest-mismatch' | 'no-platform' | 'unsupported-media-type' | 'registry' | 'registry-unreachable' | 'invalid-reference',
    message: string,
  ) {
    super(message);
  }
}
