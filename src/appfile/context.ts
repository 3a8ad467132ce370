/**
 * What the readers of one service need from the file around it. Pure.
 */
import type { FieldPath, Problems } from './problems.js';

/** A named volume declared under the top-level `volumes:`. */
export interface VolumeDeclaration {
  /** `external: true`: the volume must exist already; deploying never creates it. */
  external: boolean;
  /** `x-hivemind.size`: its size when the deploy creates it; absent: VOLUME_SIZE_BYTES_DEFAULT. */
  sizeBytes?: number;
}

export interface FileContext {
  readonly problems: Problems;
  /**
   * The number at `path` as written in the YAML (`1.10` stays "1.10" rather
   * than becoming "1.1"), when it can be found there; values that come through
   * a merge key (`<<: *base`) are written out by JavaScript instead.
   */
  readonly numberSource: (path: FieldPath) => string | undefined;
  /** Looks up a variable of the deploying environment (for `KEY:` without a value); `undefined` when unset. */
  readonly variable: (name: string) => string | undefined;
  /** Named volumes declared under the top-level `volumes:`. */
  readonly declaredVolumes: ReadonlyMap<string, VolumeDeclaration>;
  /** Secrets declared under the top-level `secrets:`. */
  readonly declaredSecrets: ReadonlySet<string>;
}
