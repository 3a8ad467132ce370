/**
 * What the readers of one service need from the file around it. Pure.
 */
import type { ConfigFileSpec } from '../state/types.js';
import type { FieldPath, Problems } from './problems.js';

/** A named volume declared under the top-level `volumes:`. */
export interface VolumeDeclaration {
  /** `external: true`: the volume must exist already; deploying never creates it. */
  external: boolean;
  /** `x-hivemind.size`: its size when the deploy creates it; absent: VOLUME_SIZE_BYTES_DEFAULT. */
  sizeBytes?: number;
  /** `x-hivemind.encrypted: true`: the deploy creates it encrypted at rest. */
  encrypted?: boolean;
}

/** A network declared under the top-level `networks:`, by its key in the file. */
export interface NetworkDeclaration {
  /** The tenant network's name: `name:`, else the key (with `_` as `-`). */
  name: string;
  /** `external: true`: the network must exist in the tenant already; deploying never creates it. */
  external: boolean;
  /** `ipam.config[0].subnet` as written (a CIDR), and where. */
  subnet?: { cidr: string; path: string };
}

/**
 * A local path the app file names (a config's `file:`, a relative bind
 * mount's source), as the deploying machine read it: a file, a folder's
 * files (relative paths, `/`-separated), or a folder beyond
 * `configLimits` (not read; what was counted until then). Bytes in base64.
 */
export type LocalSource =
  | { kind: 'file'; data: string }
  | { kind: 'folder'; files: ConfigFileSpec[] }
  | { kind: 'too-large'; files: number; bytes: number };

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
  /** Secrets declared under the top-level `secrets:`, by Hivemind name (`db_password` is `db-password`). */
  readonly declaredSecrets: ReadonlySet<string>;
  /** The local files the app file refers to (`env_file`, `secrets.x.file`), by path as written. */
  readonly files: Readonly<Record<string, string>>;
  /** The local files and folders of configs and relative bind mounts, by path as written, as the caller read them. */
  readonly localSources: Readonly<Record<string, LocalSource>>;
  /** Configs declared under the top-level `configs:`, by Hivemind name, with their files (undefined after an error). */
  readonly declaredConfigs: ReadonlyMap<string, ConfigFileSpec[] | undefined>;
  /** Networks declared under the top-level `networks:`, by key as written; `default` is always there (Compose declares it). */
  readonly declaredNetworks: ReadonlyMap<string, NetworkDeclaration>;
  /** Filled while reading: per app, the file path of state fields in lists (`hivemind.secrets[0]` → `services.db.secrets[0]`). */
  readonly origins: Record<string, Record<string, string>>;
  /** Where the file's tenant came from, for messages: `x-hivemind.tenant`, or `tenant` (given with the deploy, or the default). */
  readonly tenantField: string;
  /** Filled while reading: the services with `deploy.mode: global`. */
  readonly globalServices: string[];
  /** Filled while reading: the values the file gives its declared secrets, by Hivemind name. */
  readonly secretValues: Map<string, string>;
}
