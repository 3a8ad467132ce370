/**
 * The cluster's certificate authority and the certificates of its nodes.
 *
 * Keys are ECDSA P-256, made and used through WebCrypto; certificates are
 * built with `@peculiar/x509` (no hand-made ASN.1) and handed around as PEM.
 * A node's identity is its node id, written twice into its certificate: as
 * the subject's common name and as the URI SAN `hivemind://node/<id>`. Peers
 * read it back with `nodeIdOfCertificate` from what TLS verified.
 *
 * Who calls what: bootstrap makes the CA (`createClusterCa`); a joiner makes
 * its key and a CSR (`createNodeKey`, `createCertificateRequest`); the leader
 * signs the CSR (`signCertificateRequest`); a member renews its own
 * certificate with the CA key it can open from the replicated state
 * (`issueNodeCertificate`).
 */
import { X509Certificate as NodeX509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

let x509Module: Promise<typeof X509> | undefined;

/**
 * `@peculiar/x509`, loaded at the first certificate made or signed: it takes
 * most of a second to load, and a node that restarts with its certificate on
 * disk, or only checks peers' (node:crypto does that), never needs it.
 */
function loadX509(): Promise<typeof X509> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const loaded = await import('@peculiar/x509');
    loaded.cryptoProvider.set(webcrypto as unknown as Parameters<typeof loaded.cryptoProvider.set>[0]);
    return loaded;
  })();
  return x509Module;
}

/** How long a node certificate is valid by default (90 days). */
export const NODE_CERTIFICATE_VALIDITY_MS = 90 * 24 * 3600 * 1000;
/** How long the cluster CA is valid (10 years); `hivemind ca rotate` replaces it sooner. */
export const CA_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
/** Certificates are valid from this long before they are made, so a peer's clock a little behind still accepts them. */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60 * 1000;
/** Largest PEM text taken from a peer (a CSR, a certificate). */
export const PEM_CHARS_MAX = 16 * 1024;
/** The URI SAN prefix that names a node. */
export const NODE_URI_PREFIX = 'hivemind://node/';

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const SERIAL_BYTES = 16;

/** A CA: its certificate and its private key (PKCS#8 PEM). */
export interface CertificateAuthority {
  certificatePem: string;
  keyPem: string;
}

/** What a node certificate says, read back from its PEM. */
export interface CertificateFacts {
  nodeId: string | undefined;
  /** Upper-case hex, as node:tls reports `serialNumber`. */
  serial: string;
  /** ms since the epoch. */
  notBefore: number;
  notAfter: number;
  /** SHA-256 of the DER, lower-case hex. */
  fingerprint: string;
}

/** A certificate request that cannot be used; the message names what is wrong. */
export class CertificateRequestError extends Error {
  readonly code = 'CERTIFICATE_REQUEST_INVALID';
}

/** Makes a new self-signed cluster CA. */
export async function createClusterCa(options: { now: number; name?: string }): Promise<CertificateAuthority> {
  const x509 = await loadX509();
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${options.name ?? 'Hivemind cluster CA'} ${randomBytes(4).toString('hex')}`,
    notBefore: new Date(options.now - CLOCK_SKEW_ALLOWANCE_MS),
    notAfter: new Date(options.now + CA_VALIDITY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificatePem: certificate.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

/** A fresh node key pair, the private key as PKCS#8 PEM. */
export async function createNodeKey(): Promise<{ keyPem: string; keys: CryptoKeyPair }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { keyPem: await exportKeyPem(keys.privateKey), keys };
}

/** A PKCS#10 request for `nodeId`'s certificate, signed with its key. */
export async function createCertificateRequest(nodeId: string, keyPem: string): Promise<string> {
  const x509 = await loadX509();
  const keys = await importKeyPair(keyPem);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${nodeId}`, keys, signingAlgorithm: ALGORITHM });
  return request.toString('pem');
}

/**
 * Signs `requestPem` for `nodeId` with the CA. Refuses (CertificateRequestError)
 * a request that does not parse, whose signature does not verify, or that
 * names another node: the identity comes from the caller, never the request.
 */
export async function signCertificateRequest(
  ca: CertificateAuthority,
  requestPem: string,
  options: { nodeId: string; now: number; validityMs?: number; addresses?: string[] },
): Promise<string> {
  const x509 = await loadX509();
  if (typeof requestPem !== 'string' || requestPem.length === 0 || requestPem.length > PEM_CHARS_MAX) {
    throw new CertificateRequestError(`certificate_request must be a PEM certificate request of at most ${PEM_CHARS_MAX} characters`);
  }
  let request: X509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(requestPem);
  } catch (error) {
    throw new CertificateRequestError(`certificate_request does not parse as a PEM certificate request (${(error as Error).message})`);
  }
  if (!(await request.verify().catch(() => false))) throw new CertificateRequestError('certificate_request is not signed by the key it names');
  const commonName = request.subjectName.getField('CN')[0];
  if (commonName !== options.nodeId) {
    throw new CertificateRequestError(`certificate_request names ${JSON.stringify(commonName ?? '')}, not the joining node ${JSON.stringify(options.nodeId)}`);
  }
  return issueCertificate(ca, await request.publicKey.export(ALGORITHM, ['verify']), options);
}

/** Issues a certificate for `nodeId` over the public key of `keyPem` (a member renewing its own). */
export async function issueNodeCertificate(
  ca: CertificateAuthority,
  keyPem: string,
  options: { nodeId: string; now: number; validityMs?: number; addresses?: string[] },
): Promise<string> {
  const keys = await importKeyPair(keyPem);
  return issueCertificate(ca, keys.publicKey, options);
}

async function issueCertificate(ca: CertificateAuthority, publicKey: CryptoKey, options: { nodeId: string; now: number; validityMs?: number; addresses?: string[] }): Promise<string> {
  const x509 = await loadX509();
  const caCertificate = new x509.X509Certificate(ca.certificatePem);
  const caKey = await importPrivateKey(ca.keyPem);
  const names: X509.JsonGeneralName[] = [{ type: 'url', value: `${NODE_URI_PREFIX}${options.nodeId}` }];
  for (const address of options.addresses ?? []) names.push(isIP(address) ? { type: 'ip', value: address } : { type: 'dns', value: address });
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${options.nodeId}`,
    issuer: caCertificate.subject,
    notBefore: new Date(options.now - CLOCK_SKEW_ALLOWANCE_MS),
    notAfter: new Date(options.now + (options.validityMs ?? NODE_CERTIFICATE_VALIDITY_MS)),
    publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(caCertificate),
    ],
  });
  return certificate.toString('pem');
}

/** The facts of a PEM certificate. Throws when it does not parse. */
export function certificateFacts(pem: string): CertificateFacts {
  const certificate = new NodeX509Certificate(pem);
  return {
    nodeId: nodeIdOfSubject(certificate.subject, certificate.subjectAltName),
    serial: certificate.serialNumber.toUpperCase(),
    notBefore: Date.parse(certificate.validFrom),
    notAfter: Date.parse(certificate.validTo),
    fingerprint: createHash('sha256').update(certificate.raw).digest('hex'),
  };
}

/** Whether `certificatePem` was signed by one of `caPems` and names `nodeId` (checks signatures only, not time). */
export function certificateSignedBy(certificatePem: string, caPems: readonly string[], nodeId: string): boolean {
  const certificate = new NodeX509Certificate(certificatePem);
  if (nodeIdOfSubject(certificate.subject, certificate.subjectAltName) !== nodeId) return false;
  return caPems.some((caPem) => {
    const ca = new NodeX509Certificate(caPem);
    return certificate.checkIssued(ca) && certificate.verify(ca.publicKey);
  });
}

/** Whether `keyPem` is the private key of `certificatePem`. */
export function keyMatchesCertificate(keyPem: string, certificatePem: string): boolean {
  return new NodeX509Certificate(certificatePem).checkPrivateKey(createPrivateKey(keyPem));
}

/**
 * The node id a peer certificate (as node:tls's `getPeerCertificate()` gives
 * it) names, or undefined: the URI SAN and the common name must agree.
 */
export function nodeIdOfCertificate(certificate: { subject?: Record<string, unknown> | null; subjectaltname?: string } | undefined): string | undefined {
  if (certificate === undefined || certificate.subject === null || certificate.subject === undefined) return undefined;
  const commonName = certificate.subject.CN;
  if (typeof commonName !== 'string') return undefined;
  const uris = (certificate.subjectaltname ?? '').split(', ').filter((name) => name.startsWith(`URI:${NODE_URI_PREFIX}`));
  if (uris.length !== 1 || uris[0] !== `URI:${NODE_URI_PREFIX}${commonName}`) return undefined;
  return commonName;
}

function nodeIdOfSubject(subject: string, subjectAltName: string | undefined): string | undefined {
  const commonName = /^CN=(.*)$/m.exec(subject)?.[1];
  return commonName === undefined ? undefined : nodeIdOfCertificate({ subject: { CN: commonName }, subjectaltname: subjectAltName ?? '' });
}

/** SHA-256 over the DER of a PEM certificate, lower-case hex: what a token pins. */
export function certificateFingerprint(pem: string): string {
  return createHash('sha256').update(new NodeX509Certificate(pem).raw).digest('hex');
}

function randomSerial(): string {
  const bytes = randomBytes(SERIAL_BYTES);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and of full length
  return bytes.toString('hex');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function importPrivateKey(keyPem: string): Promise<CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
}

async function importKeyPair(keyPem: string): Promise<CryptoKeyPair> {
  const privateKey = createPrivateKey(keyPem);
  return {
    privateKey: await webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), ALGORITHM, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), ALGORITHM, true, ['verify']),
  };
}
