/**
 * What a component offers the node's API beyond running: typed
 * capabilities (an instance's logs, the node's volumes, its images), so
 * the API asks for "the volumes of this node" rather than casting a
 * component found by name. The executor offers all of them today; a node
 * whose components offer none answers 503 on those routes.
 *
 * Like everything in `src/node/`, this names no component: the shapes here
 * are the contract, and a component's classes meet them structurally.
 */
import type { ImageShare } from './image-share.js';

/** The logs of the instances this node runs. */
export interface InstanceLogs {
  /** Where instance `id`'s log file is on this node (whether or not it exists). */
  logPath(id: string): string;
  /** Whether instance `id` runs here now (a follow ends when it stops). */
  runs(id: string): boolean;
}

/** Why an exec could not run (not the command's own failure, which is its exit code). */
export class ExecError extends Error {
  constructor(
    readonly code: 'not-running' | 'unsupported',
    message: string,
    /** The request's field at fault, when it is not the instance (`tty`: a terminal the runtime cannot give). */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A terminal's size in character cells; both from 1 to TERMINAL_CELLS_MAX. */
export interface TerminalSize {
  columns: number;
  rows: number;
}

/** The largest terminal side accepted, in cells (a terminal's own limit is 65535). */
export const TERMINAL_CELLS_MAX = 10_000;

/**
 * What a caller sends a running exec (`hivemind exec -i`/`-t`), in order:
 * bytes for its stdin, the end of its stdin (the command reads end-of-file),
 * a new terminal size (with a terminal only).
 */
export type ExecInputEvent = { type: 'stdin'; data: Uint8Array } | { type: 'stdin-end' } | { type: 'resize'; size: TerminalSize };

/** How an exec is run: its deadline, its output, and optionally its input and terminal. */
export interface InstanceExecOptions {
  signal: AbortSignal;
  timeoutMs: number;
  output: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => void;
  /**
   * What the caller sends as the command runs, read in order (the runtime
   * waits for a stdin write to be taken before reading the next event, so a
   * slow command slows the sender). Its end counts as a `stdin-end`.
   */
  input?: AsyncIterable<ExecInputEvent>;
  /** Whether the command's stdin is `input`'s stdin bytes; false or absent: its stdin is empty and stdin events are ignored. */
  stdin?: boolean;
  /**
   * Runs the command on a pseudo-terminal of this size (as `docker exec -t`):
   * its stdout and stderr both arrive as `stdout`. A runtime without
   * terminals refuses with ExecError `unsupported`.
   */
  terminal?: TerminalSize;
}

/** Commands run in the instances this node runs (`hivemind exec`). */
export interface InstanceExec {
  /**
   * Runs `argv` in running instance `id`, as its main process runs (its
   * namespaces, user, environment and folder), handing each chunk of output
   * to `output` as it comes; resolves with the exit code once the command
   * ends. Aborting `signal` kills the command. An ExecError when `id` does
   * not run here or its runtime cannot exec (or cannot give it a terminal).
   */
  exec(id: string, argv: string[], options: InstanceExecOptions): Promise<{ exitCode: number; timedOut: boolean }>;
}

/** A volume snapshot as the API lists it. */
export interface VolumeSnapshotView {
  /** The UTC time it was taken, as `20261205T063000123Z`; unique per volume. */
  id: string;
  takenAtMs: number;
  sizeBytes: number;
  usedBytes: number;
}

/** The volumes whose data this node holds: snapshots, backups and moves. Errors whose `retryable` is true may pass later. */
export interface NodeVolumes {
  snapshot(tenant: string, name: string, nowMs: number): Promise<VolumeSnapshotView>;
  snapshots(tenant: string, name: string): Promise<VolumeSnapshotView[]>;
  /** False when there was no such snapshot. */
  deleteSnapshot(tenant: string, name: string, id: string): Promise<boolean>;
  /** The volume's files as a tar.zst stream (of a snapshot when `snapshotId` is given). */
  backup(tenant: string, name: string, options?: { snapshotId?: string }): Promise<AsyncIterable<Uint8Array>>;
  /** The archive a move sends, once the volume's workloads here have stopped (waits up to `waitMs`). */
  archiveForMove(tenant: string, name: string, options: { waitMs: number; sleep: (ms: number) => Promise<void>; nowMs: () => number }): Promise<AsyncIterable<Uint8Array>>;
  /** Takes a moved volume's archive as this node's copy. */
  receive(tenant: string, name: string, body: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void>;
  /** Replaces the volume's files with a backup's. */
  restore(tenant: string, name: string, body: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void>;
}

/** An image as `hivemind image ls` shows it. */
export interface NodeImageSummary {
  name: string;
  digest: string;
  mediaType: string;
  sizeBytes: number;
  createdAt?: number;
}

/** The images of this node's container runtime. Failures are the runtime's own errors (the API maps them). */
export interface NodeImages {
  /** Whether the node can hold images now (containerd and runc present); the other calls open the runtime. */
  available(): Promise<boolean>;
  list(): Promise<NodeImageSummary[]>;
  /** Pulls `reference` from its registry; answers the stored name. */
  pull(reference: string, options?: { signal?: AbortSignal }): Promise<string>;
  /** Imports an OCI image layout archive on this node; answers the names made. */
  importArchive(path: string, options?: { name?: string }): Promise<string[]>;
  /** A folder of this node's own where an uploaded archive may be written before its import. */
  uploadFolder(): Promise<string>;
}

/** The capabilities a component may offer (each optional). */
export interface NodeCapabilities {
  readonly logs?: InstanceLogs;
  readonly exec?: InstanceExec;
  readonly volumes?: NodeVolumes;
  readonly images?: NodeImages;
  /** This node's images as its peers read them (the peer port). */
  readonly imageShare?: ImageShare;
}

/** The capabilities of `components`, each from the first component that offers it. */
export function capabilitiesOf(components: readonly { readonly capabilities?: NodeCapabilities }[]): NodeCapabilities {
  const found: { -readonly [K in keyof NodeCapabilities]: NodeCapabilities[K] } = {};
  for (const component of components) {
    const offered = component.capabilities;
    if (offered === undefined) continue;
    found.logs ??= offered.logs;
    found.exec ??= offered.exec;
    found.volumes ??= offered.volumes;
    found.images ??= offered.images;
    found.imageShare ??= offered.imageShare;
  }
  return found;
}
