/**
 * What a component needs to speak TLS to its peers the way the peer port
 * does (src/security/node-credentials.ts implements it; components see only
 * this seam): the node's material in force, word when it changes, and the
 * verdict on a peer's verified certificate.
 */

/** The node's key and certificate (PEM), and the CA certificates it trusts, signing CA first. */
export interface PeerTlsMaterial {
  readonly keyPem: string;
  readonly certificatePem: string;
  readonly caPems: readonly string[];
}

/** A certificate as node:tls reports a verified peer's (in part). */
export interface PeerCertificateFields {
  subject?: Record<string, unknown> | null;
  subjectaltname?: string;
  serialNumber?: string;
}

/** See the file comment. */
export interface PeerTls {
  /** The material in force; undefined before the node has any (a joiner). */
  readonly current: PeerTlsMaterial | undefined;
  /** Calls `listener` with each new material; returns the remover. */
  onUpdate(listener: (material: PeerTlsMaterial) => void): () => void;
  /** The node a certificate TLS verified names, if it names one and is not revoked; else why not. */
  verifyPeer(certificate: PeerCertificateFields): { ok: true; nodeId: string } | { ok: false; reason: string };
}
