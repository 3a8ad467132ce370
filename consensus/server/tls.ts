/**
 * Mutual TLS for the key-value server's two ports, from PEM files in one
 * directory (`--tls-dir`). This module only reads them: the benchmark and the
 * tests make them with the agent's own certificate code
 * (src/security/certificates.ts, ECDSA P-256).
 *
 * Layout (`tlsFilePaths`): `ca.pem`, the CA every certificate chains to;
 * `<id>.key`, this node's private key (PKCS#8 PEM); `<member>.pem`, the
 * certificate of every member named by `--cluster`, this node's included.
 *
 * - Peer port: the transport's security hook (consensus/transport/options.ts).
 *   grpc-js TLS that requires a client certificate chaining to the CA; a
 *   caller is the member whose certificate it presented, and every batch's
 *   and snapshot's sender must be that member (transport/server.ts). The
 *   channel to member X accepts only X's certificate.
 * - Client port: TLS that requires a client certificate chaining to the CA,
 *   with any name (as etcd's `--client-cert-auth`).
 * - A Put forwarded to the leader's client port presents this node's
 *   certificate and accepts only the leader's.
 *
 * Why certificates are pinned rather than names read: the agent reads a node
 * id from a certificate's names (`nodeIdOfCertificate` in src/security/),
 * code that consensus/ does not import. A KV server knows every member's
 * certificate from the start, and comparing SHA-256 fingerprints needs no
 * second copy of that naming rule.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureServerOptions } from 'node:http2';
import type { ConnectionOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../core/types.js';
import type { GrpcTransportSecurity, PeerCall } from '../transport-grpc.js';

/** Sent as the TLS server name on every channel, so no IP address goes out as SNI; the pinned check ignores it. */
export const TLS_SERVER_NAME = 'hivemind-kv.peer';

/** The server's TLS material, read and checked. */
export interface ServerTls {
  readonly caPem: string;
  readonly keyPem: string;
  readonly certificatePem: string;
  /** Every member's certificate fingerprint (SHA-256, as node:crypto and node:tls print it), by node id. */
  readonly memberFingerprints: ReadonlyMap<NodeId, string>;
}

/** `--tls-dir` lacks a file, or holds one that does not parse or does not fit; the message names the file. */
export class TlsDirectoryError extends Error {
  readonly code = 'KV_TLS_DIRECTORY_INVALID';
}

/** Where each file of a TLS directory lives. */
export function tlsFilePaths(directory: string): { ca: string; key(id: NodeId): string; certificate(id: NodeId): string } {
  return {
    ca: join(directory, 'ca.pem'),
    key: (id) => join(directory, `${id}.key`),
    certificate: (id) => join(directory, `${id}.pem`),
  };
}

/**
 * Reads `directory` for node `id` of `memberIds`. Throws TlsDirectoryError
 * when a file is missing or unreadable, a PEM does not parse, this node's key
 * is not its certificate's, a member's certificate is not signed by the CA,
 * or two members share one certificate.
 */
export function readTlsDirectory(directory: string, options: { id: NodeId; memberIds: readonly NodeId[] }): ServerTls {
  const paths = tlsFilePaths(directory);
  const caPem = readPem(paths.ca);
  const ca = parseCertificate(caPem, paths.ca);
  const keyPem = readPem(paths.key(options.id));
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new TlsDirectoryError(`--tls-dir: ${paths.key(options.id)} is not a PEM private key (${(error as Error).message})`);
  }
  const memberFingerprints = new Map<NodeId, string>();
  let certificatePem = '';
  for (const member of options.memberIds) {
    const path = paths.certificate(member);
    const pem = readPem(path);
    const certificate = parseCertificate(pem, path);
    if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) {
      throw new TlsDirectoryError(`--tls-dir: ${path} is not signed by the CA in ${paths.ca}; make every certificate with the same CA`);
    }
    const same = [...memberFingerprints].find(([, fingerprint]) => fingerprint === certificate.fingerprint256);
    if (same !== undefined) {
      throw new TlsDirectoryError(`--tls-dir: ${path} is the same certificate as ${paths.certificate(same[0])}; every member needs its own, since a peer is known by its certificate`);
    }
    memberFingerprints.set(member, certificate.fingerprint256);
    if (member === options.id) {
      if (!certificate.checkPrivateKey(key)) {
        throw new TlsDirectoryError(`--tls-dir: ${paths.key(options.id)} is not the key of ${path}; give this node's key and certificate as a pair`);
      }
      certificatePem = pem;
    }
  }
  if (certificatePem === '') throw new TlsDirectoryError(`--tls-dir: --cluster does not name this node "${options.id}"`);
  return { caPem, keyPem, certificatePem, memberFingerprints };
}

/**
 * The peer port's security: the transport authenticates every incoming
 * stream and snapshot with `authenticate`, and dials member `id` with
 * credentials that accept only `id`'s certificate.
 */
export function transportSecurity(tls: ServerTls): GrpcTransportSecurity {
  const ca = Buffer.from(tls.caPem);
  const key = Buffer.from(tls.keyPem);
  const certificate = Buffer.from(tls.certificatePem);
  const serverCredentials = grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: certificate }], true);
  const channelCredentials = new Map<NodeId, grpc.ChannelCredentials>();
  return {
    serverCredentials: () => serverCredentials,
    channelCredentials: (id) => {
      let credentials = channelCredentials.get(id);
      if (credentials === undefined) {
        credentials = pinnedChannelCredentials(tls, id);
        channelCredentials.set(id, credentials);
      }
      return credentials;
    },
    tlsConnectOptions: (id) => pinnedConnectOptions(tls, id),
    channelOptions: { 'grpc.ssl_target_name_override': TLS_SERVER_NAME },
    authenticate: (call: PeerCall) => {
      const context = call.getAuthContext() as { transportSecurityType?: string; sslPeerCertificate?: { fingerprint256?: string } } | null;
      if (context?.transportSecurityType !== 'ssl' || context.sslPeerCertificate === undefined) return { ok: false, reason: 'no-verified-certificate' };
      const member = memberOf(tls, context.sslPeerCertificate.fingerprint256);
      return member === undefined ? { ok: false, reason: 'not-a-member' } : { ok: true, nodeId: member };
    },
  };
}

/** node:tls options for a connection to member `id`'s peer port outside grpc-js: as `pinnedChannelCredentials`. */
export function pinnedConnectOptions(tls: ServerTls, id: NodeId): ConnectionOptions {
  return {
    ca: tls.caPem,
    key: tls.keyPem,
    cert: tls.certificatePem,
    servername: TLS_SERVER_NAME,
    checkServerIdentity: (_host, certificate) => pinnedServerCheck(tls, id, certificate.fingerprint256),
  };
}

/** Undefined when a server's certificate (by its fingerprint) is member `id`'s, else the error that refuses it. */
function pinnedServerCheck(tls: ServerTls, id: NodeId, fingerprint: string | undefined): Error | undefined {
  const expected = tls.memberFingerprints.get(id);
  return expected !== undefined && fingerprint === expected
    ? undefined
    : new Error(`the server's certificate is not member ${JSON.stringify(id)}'s (${fingerprint ?? 'no fingerprint'})`);
}

/**
 * Credentials for a grpc-js channel to member `id` (its peer or its client
 * port): this node's certificate, and only `id`'s accepted. Use with
 * `channelOptions` of `transportSecurity`.
 */
export function pinnedChannelCredentials(tls: ServerTls, id: NodeId): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certificatePem), {
    checkServerIdentity: (_host, certificate) => pinnedServerCheck(tls, id, certificate.fingerprint256),
  });
}

/** The client port's TLS (node:http2): a client certificate chaining to the CA is required. */
export function clientPortTlsOptions(tls: ServerTls): SecureServerOptions {
  return { ca: tls.caPem, key: tls.keyPem, cert: tls.certificatePem, requestCert: true, rejectUnauthorized: true };
}

function memberOf(tls: ServerTls, fingerprint: string | undefined): NodeId | undefined {
  if (fingerprint === undefined) return undefined;
  for (const [member, expected] of tls.memberFingerprints) if (expected === fingerprint) return member;
  return undefined;
}

function readPem(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new TlsDirectoryError(`--tls-dir: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); the directory holds ca.pem, this node's <id>.key, and <member>.pem for every member of --cluster`);
  }
}

function parseCertificate(pem: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsDirectoryError(`--tls-dir: ${path} is not a PEM certificate (${(error as Error).message})`);
  }
}
