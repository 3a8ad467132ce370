/**
 * One node's TLS material and the gRPC credentials made from it.
 *
 * The material (this node's key and certificate, and the CA certificates it
 * trusts) can change while the node runs: a renewed certificate, a CA
 * rotation, a joiner that gets its certificate only once admitted. So the
 * credentials read it through grpc-js's certificate providers: each new
 * connection, on either side, uses the material current at that moment, and
 * `update` changes it without restarting a server or a channel.
 *
 * Trust has three parts, all checked by `authenticate` on the server side and
 * by the channel's identity check on the client side:
 * - TLS verifies the peer's chain against the trusted CA certificates (and
 *   its validity period);
 * - the certificate must name a node (`nodeIdOfCertificate`);
 * - its serial must not be revoked (a node that left or was removed).
 */
import * as grpc from '@grpc/grpc-js';
import type { ConnectionOptions } from 'node:tls';
import { nodeIdOfCertificate } from './certificates.js';

/** What a node holds: its key and certificate (PEM), and the CA certificates it trusts, signing CA first. */
export interface TlsMaterial {
  keyPem: string;
  certificatePem: string;
  caPems: readonly string[];
}

/** Why a peer's call or message was refused; the label of `hivemind_peer_rejected_total`. */
/**
 * `no-verified-certificate`: none presented, or one that does not chain to a
 * trusted CA or has expired (grpc-js reports both alike).
 */
export type PeerRejectReason = 'no-verified-certificate' | 'no-identity' | 'revoked' | 'sender-mismatch';

/** `authenticate`'s answer. */
export type PeerAuthentication = { ok: true; nodeId: string; serial: string } | { ok: false; reason: PeerRejectReason };

/** What TLS reports of a verified peer (node:tls's `PeerCertificate`, in part). */
export interface VerifiedPeerCertificate {
  subject?: Record<string, unknown> | null;
  subjectaltname?: string;
  serialNumber?: string;
}

/** The channel option that keeps grpc-js from sending an IP address as the TLS server name (the identity check ignores it). */
export const TLS_SERVER_NAME = 'hivemind.peer';

/** A node's credentials; see the file comment. It serves as a component's `PeerTls` (src/node/peer-tls.ts) by its shape. */
export class NodeCredentials implements grpc.experimental.CertificateProvider {
  private material: TlsMaterial | undefined;
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private readonly updateListeners = new Set<(material: TlsMaterial) => void>();
  private serverCredentialsInstance: grpc.ServerCredentials | undefined;
  private readonly channelCredentialsByPeer = new Map<string, grpc.ChannelCredentials>();

  /**
   * @param isRevoked whether a certificate serial (upper-case hex) is revoked;
   *   read at every authentication, so it follows the replicated deny list.
   */
  constructor(
    readonly nodeId: string,
    private readonly isRevoked: (serial: string) => boolean = () => false,
  ) {}

  /** The material in force, if any yet. */
  get current(): TlsMaterial | undefined {
    return this.material;
  }

  /** Puts new material in force for every later connection. */
  update(material: TlsMaterial): void {
    this.material = { ...material, caPems: [...material.caPems] };
    const ca = { caCertificate: Buffer.from(material.caPems.join('\n')) };
    const identity = { certificate: Buffer.from(material.certificatePem), privateKey: Buffer.from(material.keyPem) };
    for (const listener of this.caListeners) listener(ca);
    for (const listener of this.identityListeners) listener(identity);
    for (const listener of this.updateListeners) listener(this.material);
  }

  /**
   * Calls `listener` with the material at every `update` from now on (and
   * not with the material already in force: read `current` for that).
   * Returns a function that removes the listener. For servers outside gRPC
   * (the HTTPS API) that must follow a renewal or a CA change.
   */
  onUpdate(listener: (material: TlsMaterial) => void): () => void {
    this.updateListeners.add(listener);
    return () => this.updateListeners.delete(listener);
  }

  /**
   * For the peer port's server: requests a client certificate but does not
   * require one, so a joining node without one can call Join; every other
   * handler calls `authenticate` and refuses a call without a verified one.
   */
  serverCredentials(): grpc.ServerCredentials {
    this.serverCredentialsInstance ??= grpc.experimental.createCertificateProviderServerCredentials(this, this, false);
    return this.serverCredentialsInstance;
  }

  /**
   * For calls to a member: presents this node's certificate and accepts the
   * server only if its certificate chains to a trusted CA, names a node
   * (`expectedNodeId` exactly, when given), and is not revoked.
   */
  channelCredentials(expectedNodeId?: string): grpc.ChannelCredentials {
    const key = expectedNodeId ?? '';
    let credentials = this.channelCredentialsByPeer.get(key);
    if (credentials === undefined) {
      credentials = grpc.experimental.createCertificateProviderChannelCredentials(this, this, {
        checkServerIdentity: (_host, certificate) => this.checkServer(certificate, expectedNodeId),
      });
      this.channelCredentialsByPeer.set(key, credentials);
    }
    return credentials;
  }

  /**
   * For a connection to a member outside grpc-js (a blob read,
   * src/agent/image-read-stream.ts): node:tls options with the material in
   * force now, which accept the server as `channelCredentials` does. The
   * caller passes them to a new connection at once (a later `update` is
   * not in them). Throws when this node holds no certificate yet.
   */
  tlsConnectOptions(expectedNodeId?: string): ConnectionOptions {
    const material = this.material;
    if (material === undefined) throw new Error('this node holds no certificate yet');
    return {
      key: material.keyPem,
      cert: material.certificatePem,
      ca: [...material.caPems],
      servername: TLS_SERVER_NAME,
      checkServerIdentity: (_host, certificate) => this.checkServer(certificate, expectedNodeId),
    };
  }

  /** The identity check of a server certificate TLS verified: it names a node (`expectedNodeId`, when given), not revoked. */
  private checkServer(certificate: VerifiedPeerCertificate, expectedNodeId: string | undefined): Error | undefined {
    const verdict = this.judge(certificate);
    if (!verdict.ok) return new Error(`the peer's certificate was refused: ${verdict.reason}`);
    if (expectedNodeId !== undefined && verdict.nodeId !== expectedNodeId) {
      return new Error(`the peer's certificate names node ${JSON.stringify(verdict.nodeId)}, not ${JSON.stringify(expectedNodeId)}`);
    }
    return undefined;
  }

  /**
   * Who made a server call: the node its verified certificate names, or why
   * it is refused. `authContext` is the call's `getAuthContext()`: grpc-js
   * fills `sslPeerCertificate` only when TLS verified the chain.
   */
  authenticate(authContext: { transportSecurityType?: string; sslPeerCertificate?: VerifiedPeerCertificate } | null | undefined): PeerAuthentication {
    if (authContext?.transportSecurityType !== 'ssl' || authContext.sslPeerCertificate === undefined) return { ok: false, reason: 'no-verified-certificate' };
    return this.judge(authContext.sslPeerCertificate);
  }

  /** The verdict on a certificate TLS verified (for peers outside gRPC: gossip's push-pull). */
  verifyPeer(certificate: VerifiedPeerCertificate): PeerAuthentication {
    return this.judge(certificate);
  }

  private judge(certificate: VerifiedPeerCertificate): PeerAuthentication {
    const nodeId = nodeIdOfCertificate(certificate);
    if (nodeId === undefined) return { ok: false, reason: 'no-identity' };
    const serial = (certificate.serialNumber ?? '').toUpperCase();
    if (serial === '' || this.isRevoked(serial)) return { ok: false, reason: 'revoked' };
    return { ok: true, nodeId, serial };
  }

  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    if (this.material !== undefined) {
      const update = { caCertificate: Buffer.from(this.material.caPems.join('\n')) };
      process.nextTick(() => listener(update));
    }
  }

  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    if (this.material !== undefined) {
      const update = { certificate: Buffer.from(this.material.certificatePem), privateKey: Buffer.from(this.material.keyPem) };
      process.nextTick(() => listener(update));
    }
  }

  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }
}

/**
 * For a node that has no certificate yet (a joiner calling Join): TLS that
 * presents none and verifies nothing. The join's answer is authenticated by
 * the join token instead (src/agent/join-proof.ts), the CA and certificate in
 * it included, so an impostor on the path learns nothing it can use and
 * cannot substitute a CA of its own.
 */
export function unverifiedChannelCredentials(): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false });
}
