/**
 * Apply handlers for the cluster CA and node certificates. Pure: they read
 * the state and the command only (the envelope's time prunes expired
 * revocations, so every node prunes the same ones).
 *
 * A certificate is revoked when its node leaves or is removed: its serial
 * goes to the CA record's deny list until the certificate expires, and every
 * node refuses a connection that presents it.
 */
import { ErrorCode } from './errors.js';
import { refuse, type ApplyContext, type ClusterState, type Plan } from './state.js';
import { NODE_CERTIFICATES_MAX, REVOKED_CERTIFICATES_MAX, type CertificateRecord, type Command, type NodeRecord } from './types.js';
import { bytes, list, object, oneOf, text } from './schema.js';
import { certificateRecord, identifier, nonce, LIMITS } from './fields.js';
import type { CommandModule } from './command.js';

type CommandOf<T extends Command['type']> = Extract<Command, { type: T }>;

/** ca.set: the trusted CA certificates and the sealed signing key. Revocations carry over. */
export function planCaSet(state: ClusterState, command: CommandOf<'ca.set'>, context: ApplyContext): Plan {
  return {
    ok: true,
    commit: () => {
      const first = state.ca === undefined;
      state.ca = {
        certificates: command.certificates,
        keySealed: command.keySealed,
        keyNonce: command.keyNonce,
        setIndex: context.index,
        revoked: pruneRevoked(state.ca?.revoked ?? [], context.time),
      };
      const summary = first ? 'created' : `set (${command.certificates.length} trusted certificate${command.certificates.length === 1 ? '' : 's'})`;
      return { value: { setIndex: context.index }, history: { target: 'cluster CA', summary } };
    },
  };
}

/** node.certificate: a certificate a node renewed for itself. Refused for a node that left (its certificates are revoked). */
export function planNodeCertificate(state: ClusterState, command: CommandOf<'node.certificate'>, context: ApplyContext): Plan {
  const action = `cannot record a certificate of node "${command.id}"`;
  const node = state.nodes.get(command.id);
  if (node === undefined) return refuse(ErrorCode.notFound, `${action}: the node is not registered`, 'id');
  if (node.status === 'left') return refuse(ErrorCode.conflict, `${action}: the node has left the cluster`, 'id');
  if (isRevoked(state, command.certificate.serial)) return refuse(ErrorCode.conflict, `${action}: serial ${command.certificate.serial} is revoked`, 'certificate.serial');
  return {
    ok: true,
    commit: () => {
      recordCertificate(node, command.certificate);
      node.updatedIndex = context.index;
      return { value: { id: node.id }, history: { target: `node ${node.id}`, summary: `certificate ${shortSerial(command.certificate.serial)} recorded` } };
    },
  };
}

/** Adds `certificate` to the node's list, keeping the newest NODE_CERTIFICATES_MAX. For node.register's commit too. */
export function recordCertificate(node: NodeRecord, certificate: CertificateRecord): void {
  const kept = (node.certificates ?? []).filter((known) => known.serial !== certificate.serial);
  kept.push({ serial: certificate.serial, notAfter: certificate.notAfter, ...(certificate.issuer === undefined ? {} : { issuer: certificate.issuer }) });
  node.certificates = kept.slice(-NODE_CERTIFICATES_MAX);
}

/**
 * Moves the node's certificates to the deny list (a node that left or was
 * removed). Part of a commit: call only once the command is accepted.
 */
export function revokeNodeCertificates(state: ClusterState, node: NodeRecord, context: ApplyContext): void {
  const certificates = node.certificates ?? [];
  node.certificates = [];
  if (state.ca === undefined || certificates.length === 0) return;
  const revoked = pruneRevoked(state.ca.revoked, context.time);
  for (const certificate of certificates) {
    if (certificate.notAfter > context.time) revoked.push({ ...certificate, node: node.id });
  }
  // Past the cap the oldest revocations go first: they expire soonest.
  state.ca.revoked = revoked.slice(-REVOKED_CERTIFICATES_MAX);
}

/** Whether `serial` is on the deny list. */
export function isRevoked(state: ClusterState, serial: string): boolean {
  return state.ca?.revoked.some((entry) => entry.serial === serial) ?? false;
}

function pruneRevoked(revoked: readonly (CertificateRecord & { node: string })[], time: number): (CertificateRecord & { node: string })[] {
  return revoked.filter((entry) => entry.notAfter > time);
}

function shortSerial(serial: string): string {
  return serial.length > 12 ? `${serial.slice(0, 12)}…` : serial;
}

// -----------------------------------------------------------------------------
// The commands of this file as modules: schema, plan, proposers, version (listed in commands.ts).

/** `node.certificate`. */
export const nodeCertificateCommand: CommandModule<'node.certificate'> = {
  type: 'node.certificate',
  since: 2,
  proposers: ['member'],
  changesNodeRecords: true,
  memberSelf: 'id',
  schema: object<CommandOf<'node.certificate'>>({ type: oneOf(['node.certificate']), id: identifier, certificate: certificateRecord }),
  plan: planNodeCertificate,
};

/** `ca.set`. */
export const caSetCommand: CommandModule<'ca.set'> = {
  type: 'ca.set',
  since: 2,
  proposers: ['leader'],
  schema: object<CommandOf<'ca.set'>>({
    type: oneOf(['ca.set']),
    certificates: list(text({ bytesMin: 1, bytesMax: LIMITS.certificatePemBytesMax, pattern: /^-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/, patternHint: 'one PEM certificate', multiline: true }), { min: 1, max: LIMITS.caCertificatesMax, unique: true }),
    keySealed: bytes({ bytesMin: LIMITS.sealTagBytes, bytesMax: LIMITS.caKeySealedBytesMax }),
    keyNonce: nonce,
  }),
  plan: planCaSet,
};
