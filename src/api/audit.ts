/**
 * The audit log: one JSON line per mutating request and per refused one
 * (401, 403), on the node the client called, in
 * `<data-dir>/audit/audit.log`. A line is shaped like a Kubernetes audit
 * event (`audit.k8s.io/v1` `Event`, stage `ResponseComplete`) so that log
 * tooling built for those reads it: `user.username`, `sourceIPs`, `verb`,
 * `requestURI`, `objectRef.namespace` (the tenant), `responseStatus.code`,
 * plus Hivemind's own `annotations` (outcome, route, Raft index, node).
 *
 * A write forwarded to the leader is recorded twice: where the client sent
 * it, and on the leader, marked `hivemind/forwarded`.
 *
 * The file is append-only; past `bytesMax` it is renamed `audit.log.1`
 * (older ones shift up to `filesKept`, the oldest is dropped) and a new one
 * begins. Appends are synchronous and small (one line): a record is on disk
 * (in the page cache) before the answer's request ends.
 */
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { assert } from '../../consensus/core/assert.js';

/** What the server knows of a request it records. */
export interface AuditRecord {
  /** ms since the epoch, when the answer was sent. */
  time: number;
  node: string;
  user: string;
  tokenId?: string;
  role?: string;
  sourceAddress: string;
  method: string;
  path: string;
  /** The route template (`/v1/apps/:tenant/:name`). */
  route: string;
  tenant?: string;
  status: number;
  outcome: 'allowed' | 'refused' | 'failed';
  /** The Raft index the request's last command produced. */
  raftIndex?: number;
  /** The error's message, for a refusal or a failure. */
  message?: string;
  /** Set when another node forwarded the request here (`x-hivemind-forwarded`): the client's own call is recorded where it arrived. */
  forwardedHops?: number;
}

/** One line of the file: a Kubernetes-style audit event. */
export interface AuditEvent {
  kind: 'Event';
  apiVersion: 'audit.k8s.io/v1';
  level: 'Metadata';
  auditID: string;
  stage: 'ResponseComplete';
  requestURI: string;
  verb: string;
  user: { username: string; uid?: string; groups: string[] };
  sourceIPs: string[];
  objectRef?: { namespace: string };
  responseStatus: { code: number; message?: string };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  annotations: { 'hivemind/outcome': AuditRecord['outcome']; 'hivemind/route': string; 'hivemind/node': string; 'hivemind/raft-index'?: string; 'hivemind/forwarded'?: string };
}

/** The file's size at which it rotates. */
export const AUDIT_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
/** Rotated files kept besides the current one. */
export const AUDIT_FILES_KEPT_DEFAULT = 4;
const FILE_NAME = 'audit.log';

/** The Kubernetes-style event for `record`. Pure but for the fresh `auditID`. */
export function auditEvent(record: AuditRecord): AuditEvent {
  const timestamp = new Date(record.time).toISOString();
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: randomUUID(),
    stage: 'ResponseComplete',
    requestURI: record.path,
    verb: record.method.toLowerCase(),
    user: { username: record.user, ...(record.tokenId === undefined ? {} : { uid: record.tokenId }), groups: record.role === undefined ? [] : [`hivemind:${record.role}`] },
    sourceIPs: record.sourceAddress === '' ? [] : [record.sourceAddress],
    ...(record.tenant === undefined ? {} : { objectRef: { namespace: record.tenant } }),
    responseStatus: { code: record.status, ...(record.message === undefined ? {} : { message: record.message }) },
    requestReceivedTimestamp: timestamp,
    stageTimestamp: timestamp,
    annotations: {
      'hivemind/outcome': record.outcome,
      'hivemind/route': record.route,
      'hivemind/node': record.node,
      ...(record.raftIndex === undefined ? {} : { 'hivemind/raft-index': String(record.raftIndex) }),
      ...(record.forwardedHops === undefined ? {} : { 'hivemind/forwarded': String(record.forwardedHops) }),
    },
  };
}

/** Which events `AuditLog.read` answers. */
export interface AuditFilter {
  tenant?: string;
  user?: string;
  /** ms since the epoch: events at or after it. */
  sinceMs?: number;
  /** Only events of these tenants (a caller that is not cluster-wide); undefined: all. */
  visibleTenants?: readonly string[];
  /** At most this many, the newest. */
  limit: number;
}

/** Whether `event` passes `filter`. */
export function matchesAudit(event: AuditEvent, filter: AuditFilter): boolean {
  const tenant = event.objectRef?.namespace;
  if (filter.tenant !== undefined && tenant !== filter.tenant) return false;
  if (filter.user !== undefined && event.user.username !== filter.user) return false;
  if (filter.sinceMs !== undefined && Date.parse(event.stageTimestamp) < filter.sinceMs) return false;
  if (filter.visibleTenants !== undefined && (tenant === undefined || !filter.visibleTenants.includes(tenant))) return false;
  return true;
}

/** A node's audit log directory. */
export class AuditLog {
  private readonly path: string;
  private fd: number | undefined;
  private size = 0;

  constructor(
    readonly directory: string,
    private readonly options: { bytesMax?: number; filesKept?: number; log?: (line: string) => void } = {},
  ) {
    assert((options.bytesMax ?? 1) > 0 && (options.filesKept ?? 1) >= 1, 'an audit log needs a positive size limit and at least one rotated file');
    this.path = join(directory, FILE_NAME);
  }

  /** Appends `record` as one line; a write that fails is logged, never thrown (the request was answered). */
  append(record: AuditRecord): void {
    const line = `${JSON.stringify(auditEvent(record))}\n`;
    try {
      if (this.fd === undefined) this.open();
      if (this.size > 0 && this.size + line.length > (this.options.bytesMax ?? AUDIT_BYTES_MAX_DEFAULT)) this.rotate();
      appendFileSync(this.fd!, line);
      this.size += Buffer.byteLength(line);
    } catch (error) {
      this.options.log?.(`audit: cannot write ${this.path}: ${(error as Error).message}`);
    }
  }

  /** The events that pass `filter`, oldest first, from the rotated files and the current one. */
  async read(filter: AuditFilter): Promise<AuditEvent[]> {
    const found: AuditEvent[] = [];
    const kept = this.options.filesKept ?? AUDIT_FILES_KEPT_DEFAULT;
    for (let generation = kept; generation >= 0; generation--) {
      const path = generation === 0 ? this.path : `${this.path}.${generation}`;
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        if (line === '') continue;
        let event: AuditEvent;
        try {
          event = JSON.parse(line) as AuditEvent;
        } catch {
          continue; // a line cut by a crash
        }
        if (matchesAudit(event, filter)) found.push(event);
      }
    }
    return found.slice(Math.max(0, found.length - filter.limit));
  }

  /** Closes the file. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private open(): void {
    mkdirSync(this.directory, { recursive: true, mode: 0o700 });
    this.fd = openSync(this.path, 'a', 0o600);
    this.size = statSync(this.path).size;
  }

  private rotate(): void {
    this.close();
    const kept = this.options.filesKept ?? AUDIT_FILES_KEPT_DEFAULT;
    rmSync(`${this.path}.${kept}`, { force: true });
    for (let generation = kept - 1; generation >= 1; generation--) {
      if (existsSync(`${this.path}.${generation}`)) renameSync(`${this.path}.${generation}`, `${this.path}.${generation + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.open();
  }
}
