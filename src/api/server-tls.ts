/**
 * What the API's server presents, and how a node's certificate is checked
 * against the node meant (see tls.ts). No HTTP client here: the agent
 * imports this at start without loading undici.
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { nodeIdOfCertificate } from '../security/certificates.js';
import type { TlsMaterial } from '../security/node-credentials.js';

/** The key and certificate chain (node certificate, then its issuer) a server presents. */
export function serverTlsOptions(material: TlsMaterial): { key: string; cert: string } {
  const issuer = issuerOf(material.certificatePem, material.caPems);
  return { key: material.keyPem, cert: issuer === undefined ? material.certificatePem : `${material.certificatePem.trimEnd()}\n${issuer}` };
}

/** The CA certificate of `caPems` that issued `certificatePem`, if any. */
function issuerOf(certificatePem: string, caPems: readonly string[]): string | undefined {
  const certificate = new X509Certificate(certificatePem);
  return caPems.find((caPem) => {
    const ca = new X509Certificate(caPem);
    return certificate.checkIssued(ca) && certificate.verify(ca.publicKey);
  });
}

/**
 * A `checkServerIdentity` for node:tls (and undici's `connect`): accepts a
 * certificate that names a node (any node when `expectedNodeId` is
 * undefined, else exactly it), whatever host it was reached at. TLS has
 * verified the chain before this runs.
 */
export function nodeIdentityCheck(expectedNodeId?: string): (host: string, certificate: PeerCertificate) => Error | undefined {
  return (_host, certificate) => {
    const nodeId = nodeIdOfCertificate(certificate);
    if (nodeId === undefined) return new Error('the server\'s certificate names no Hivemind node');
    if (expectedNodeId !== undefined && nodeId !== expectedNodeId) {
      return new Error(`the server's certificate names node ${JSON.stringify(nodeId)}, not ${JSON.stringify(expectedNodeId)}`);
    }
    return undefined;
  };
}

