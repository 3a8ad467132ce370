/**
 * This node's part in the cluster's trust: its TLS material on disk and in
 * force, the cluster CA in the replicated state, and the certificates it
 * issues or renews.
 *
 * - Bootstrap: `prepareBootstrap` makes the CA and this node's certificate
 *   before the peer port opens; the CA (key sealed under the cluster key) is
 *   kept in tls/bootstrap-ca.json until `maybeStoreCa` has it committed.
 * - Join: `prepareJoin` makes the key and the CSR the Join carries;
 *   `completeJoin` checks and installs what the answer brought.
 * - Restart: `loadFromDisk`.
 * - Running: `maybeSync` follows the state's CA certificates (a rotation),
 *   `maybeRenew` renews this node's certificate past two thirds of its life
 *   (any member can: it opens the CA key with the cluster key).
 * - The leader admitting a node signs its CSR (`signJoiner`).
 */
import { assert } from '../../consensus/core/assert.js';
import type { DataDir } from '../node/data-dir.js';
import type { ClusterStateMachine } from '../state/machine.js';
import { openSecret, sealSecret } from '../state/secrets.js';
import type { CertificateRecord, Command, CommandResult } from '../state/types.js';
import {
  NODE_CERTIFICATE_VALIDITY_MS,
  certificateFacts,
  certificateFingerprint,
  certificateSignedBy,
  createCertificateRequest,
  createClusterCa,
  createNodeKey,
  issueNodeCertificate,
  keyMatchesCertificate,
  signCertificateRequest,
  type CertificateAuthority,
  type CertificateFacts,
} from '../security/certificates.js';
import { NodeCredentials, type TlsMaterial } from '../security/node-credentials.js';
import { AgentError } from './agent-error.js';

/** The associated data the CA key is sealed with (under the cluster key). */
export const CA_KEY_ASSOCIATED_DATA = 'hivemind/ca-key';
/** A certificate is renewed once this share of its validity has passed. */
const RENEW_AFTER_SHARE = 2 / 3;

/** What the trust needs of its agent. */
export interface TrustContext {
  readonly nodeId: string;
  readonly dataDir: DataDir;
  readonly machine: ClusterStateMachine;
  /** The cluster key; undefined before a joiner has it. */
  clusterKey(): Uint8Array | undefined;
  /** Addresses (hosts or IPs) to name in this node's certificate beside its id. */
  addresses(): string[];
  log(line: string): void;
  /** The clock, ms since the epoch. */
  now(): number;
}

/** See the file comment. */
export class NodeTrust {
  /** The credentials the peer port and every client of it use. */
  readonly credentials: NodeCredentials;
  private pendingKeyPem: string | undefined;
  private caSetIndex: number | undefined;
  /**
   * The signing CA of material newer than this replica's CA record may be (a
   * join answer, or the data directory at a restart while the log replays):
   * the record is followed, and renewal runs, only once the record names
   * this CA. CA records form a chain in log order (each names the previous
   * one's signing CA, and a new CA appears in no record before its
   * rotation), so a record that does not name it is one the material
   * already moved past. Undefined once a record named it.
   */
  private materialSigningCa: string | undefined;
  private renewing = false;
  private factsCache: { pem: string; facts: CertificateFacts } | undefined;
  /** Whether this node's certificate is signed by the signing CA, for the pair last checked (a signature check costs about a millisecond). */
  private signedByCache: { certificatePem: string; caPem: string; signed: boolean } | undefined;
  private fingerprintCache: { pem: string; fingerprint: string } | undefined;

  constructor(private readonly context: TrustContext) {
    this.credentials = new NodeCredentials(context.nodeId, (serial) => context.machine.certificateRevoked(serial));
  }

  /** A new cluster: its CA, and this node's certificate from it. */
  async prepareBootstrap(clusterKey: Uint8Array): Promise<void> {
    const now = this.context.now();
    const ca = await createClusterCa({ now });
    const { keyPem } = await createNodeKey();
    const certificatePem = await issueNodeCertificate(ca, keyPem, { nodeId: this.context.nodeId, now, addresses: this.context.addresses() });
    const sealed = sealSecret(clusterKey, ca.keyPem, CA_KEY_ASSOCIATED_DATA);
    this.context.dataDir.writeBootstrapCa({ certificatePem: ca.certificatePem, keySealed: sealed.ciphertext, keyNonce: sealed.nonce });
    this.install({ keyPem, certificatePem, caPems: [ca.certificatePem] });
  }

  /** Restart: the material the data directory holds. */
  loadFromDisk(): void {
    const material = this.context.dataDir.readTls();
    if (material === undefined) {
      throw new AgentError(
        'data-dir',
        `the data directory ${this.context.dataDir.path} has no TLS material (tls/node.key, tls/node.crt, tls/ca.crt): it was made by a Hivemind without peer TLS; ` +
          'start this node with an empty --data-dir and `hivemind join` it again',
      );
    }
    if (!keyMatchesCertificate(material.keyPem, material.certificatePem)) {
      throw new AgentError('data-dir', `the data directory ${this.context.dataDir.path}: tls/node.key is not the key of tls/node.crt; restore both from a backup, or join again with an empty data directory`);
    }
    this.credentials.update(material);
    this.materialSigningCa = material.caPems[0];
  }

  /** A joiner's key (kept until the join completes) and the CSR its Join carries. */
  async prepareJoin(): Promise<string> {
    this.pendingKeyPem ??= this.credentials.current?.keyPem ?? (await createNodeKey()).keyPem;
    return createCertificateRequest(this.context.nodeId, this.pendingKeyPem);
  }

  /**
   * Installs what a Join answer brought, after checking it: the certificate
   * is for this node's key and id, and signed by one of the CA certificates.
   * Throws AgentError otherwise (the answer was opened with the token, so
   * this is a bug or a version skew, not an attack).
   */
  completeJoin(answer: { certificatePem: string; caPems: readonly string[] }): void {
    const keyPem = this.pendingKeyPem;
    assert(keyPem !== undefined, 'completeJoin without prepareJoin');
    if (answer.caPems.length === 0 || !certificateSignedBy(answer.certificatePem, answer.caPems, this.context.nodeId) || !keyMatchesCertificate(keyPem, answer.certificatePem)) {
      throw new AgentError('join-failed', 'the join answer carries no usable certificate for this node (is the member running an older Hivemind?)');
    }
    this.install({ keyPem, certificatePem: answer.certificatePem, caPems: answer.caPems });
    this.pendingKeyPem = undefined;
    // The answer is at least as new as this replica's CA record, which may still apply the rotations
    // the answer already reflects: follow the record only once it names the answer's signing CA.
    this.materialSigningCa = answer.caPems[0];
  }

  /** The leader: a certificate for a joiner's CSR, and its record for node.register. */
  async signJoiner(requestPem: string, nodeId: string, addresses: string[]): Promise<{ certificatePem: string; caPems: string[]; record: CertificateRecord }> {
    const ca = this.openCa();
    const certificatePem = await signCertificateRequest(ca.authority, requestPem, { nodeId, now: this.context.now(), addresses });
    const facts = certificateFacts(certificatePem);
    return { certificatePem, caPems: ca.caPems, record: { serial: facts.serial, notAfter: facts.notAfter, issuer: certificateFingerprint(ca.authority.certificatePem) } };
  }

  /**
   * Starts a CA rotation: a new CA that signs from now on, trusted beside the
   * current one until every live node holds a certificate of it
   * (`maybeFinishRotation`). Members renew from it on their own
   * (`maybeRenew`). Returns the `ca.set` to commit, or why not.
   */
  async rotationCommand(): Promise<{ ok: true; command: Command } | { ok: false; reason: string }> {
    const ca = this.context.machine.ca();
    const clusterKey = this.context.clusterKey();
    if (ca === undefined || clusterKey === undefined) return { ok: false, reason: 'the cluster has no CA yet' };
    if (ca.certificates.length > 1) return { ok: false, reason: `a rotation is in progress (${ca.certificates.length} CA certificates trusted); it ends once every live node renewed its certificate` };
    const authority = await createClusterCa({ now: this.context.now() });
    const sealed = sealSecret(clusterKey, authority.keyPem, CA_KEY_ASSOCIATED_DATA);
    return { ok: true, command: { type: 'ca.set', certificates: [authority.certificatePem, ...ca.certificates], keySealed: sealed.ciphertext, keyNonce: sealed.nonce } };
  }

  /**
   * The leader: ends a rotation (the old CA no longer trusted) once every
   * node that is up or suspect holds a certificate of the signing CA. A node
   * that is down then rejoins with a new certificate when it comes back.
   * Returns whether it proposed.
   */
  async maybeFinishRotation(propose: (command: Command) => Promise<CommandResult>): Promise<boolean> {
    const ca = this.context.machine.ca();
    if (ca === undefined || ca.certificates.length < 2) return false;
    const signing = certificateFingerprint(ca.certificates[0]!);
    const waiting = this.context.machine.nodeDirectory().filter((node) => (node.status === 'up' || node.status === 'suspect') && node.certificates?.at(-1)?.issuer !== signing);
    if (waiting.length > 0) return false;
    const result = await propose({ type: 'ca.set', certificates: [ca.certificates[0]!], keySealed: ca.keySealed, keyNonce: ca.keyNonce });
    if (result.ok) this.context.log(`CA rotation finished: every live node holds a certificate of the new CA (${signing.slice(0, 16)}…); the old CA is no longer trusted`);
    return true;
  }

  /** This node's certificate as its record names it (for its own node.register), if it has one. */
  ownCertificateRecord(): CertificateRecord | undefined {
    const material = this.credentials.current;
    if (material === undefined) return undefined;
    const facts = this.factsOf(material.certificatePem);
    return { serial: facts.serial, notAfter: facts.notAfter, issuer: certificateFingerprint(material.caPems[0]!) };
  }

  /** The leader: commits the bootstrap CA if the state has none yet. Returns whether it proposed. */
  async maybeStoreCa(propose: (command: Command) => Promise<CommandResult>): Promise<boolean> {
    if (this.context.machine.ca() !== undefined) {
      this.context.dataDir.removeBootstrapCa();
      return false;
    }
    const pending = this.context.dataDir.readBootstrapCa();
    if (pending === undefined) return false;
    const result = await propose({ type: 'ca.set', certificates: [pending.certificatePem], keySealed: pending.keySealed, keyNonce: pending.keyNonce });
    if (result.ok) {
      this.context.log('stored the cluster CA');
      this.context.dataDir.removeBootstrapCa();
    }
    return true;
  }

  /**
   * Follows the state's trusted CA certificates into the data directory and
   * the credentials, but never backwards: a replica that lags behind
   * material fresher than itself (a join answer; the data directory while a
   * restart replays the log) is not followed until its CA record names the
   * material's signing CA (`materialSigningCa`). Following an older record
   * dropped the newer CA from the trusted set mid-replay, and `maybeRenew`
   * then issued a certificate from the older CA: the node cut itself off.
   */
  maybeSync(): void {
    const ca = this.context.machine.ca();
    const material = this.credentials.current;
    if (ca === undefined || material === undefined || (this.caSetIndex !== undefined && ca.setIndex <= this.caSetIndex)) return;
    if (!this.recordReachedMaterial()) return;
    this.caSetIndex = ca.setIndex;
    const caPems = [...ca.certificates];
    // Compared as the data directory keeps them (each PEM trimmed, one newline after it): the state's may
    // lack the newline, and a restart then rewrote the bundle and rebuilt every TLS context for nothing.
    const same = caPems.length === material.caPems.length && caPems.every((pem, index) => pem.trim() === material.caPems[index]!.trim());
    if (same) return;
    this.context.dataDir.writeCaBundle(caPems);
    this.credentials.update({ ...material, caPems });
    this.context.log(`trusting ${caPems.length} CA certificate${caPems.length === 1 ? '' : 's'} from the cluster state`);
  }

  /**
   * Renews this node's certificate when two thirds of its life have passed,
   * or when the state has no record of it (then only records it). Returns
   * the command to submit (node.certificate), or undefined.
   */
  async maybeRenew(): Promise<Command | undefined> {
    const material = this.credentials.current;
    const ca = this.context.machine.ca();
    const record = this.context.machine.node(this.context.nodeId);
    if (this.renewing || material === undefined || ca === undefined || record === undefined || record.status === 'left') return undefined;
    // A record older than the material: renewing from its signing CA would move the certificate backwards.
    if (!this.recordReachedMaterial()) return undefined;
    const facts = this.factsOf(material.certificatePem);
    const now = this.context.now();
    const signing = ca.certificates[0]!;
    // Renew to the state's signing CA only if this node trusts it: a replica behind this node's material
    // (a join answer from a rotated cluster) must not move the certificate back to an older CA.
    if (!material.caPems.some((pem) => pem.trim() === signing.trim())) return undefined;
    const due = now >= facts.notBefore + (facts.notAfter - facts.notBefore) * RENEW_AFTER_SHARE || !this.signedBy(material.certificatePem, signing);
    const recorded = record.certificates?.some((known) => known.serial === facts.serial) ?? false;
    const issuer = this.fingerprintOf(signing);
    if (!due) return recorded ? undefined : { type: 'node.certificate', id: this.context.nodeId, certificate: { serial: facts.serial, notAfter: facts.notAfter, issuer } };
    this.renewing = true;
    try {
      const authority = this.openCa().authority;
      const certificatePem = await issueNodeCertificate(authority, material.keyPem, { nodeId: this.context.nodeId, now, validityMs: NODE_CERTIFICATE_VALIDITY_MS, addresses: this.context.addresses() });
      this.install({ ...material, certificatePem, caPems: [...ca.certificates] });
      const renewed = certificateFacts(certificatePem);
      this.context.log(`renewed this node's certificate (serial ${renewed.serial}, valid until ${new Date(renewed.notAfter).toISOString()})`);
      return { type: 'node.certificate', id: this.context.nodeId, certificate: { serial: renewed.serial, notAfter: renewed.notAfter, issuer } };
    } finally {
      this.renewing = false;
    }
  }

  /** Whether the state's CA record names the material's signing CA, or did once (see `materialSigningCa`). */
  private recordReachedMaterial(): boolean {
    const signing = this.materialSigningCa;
    if (signing === undefined) return true;
    const ca = this.context.machine.ca();
    if (ca === undefined || !ca.certificates.some((pem) => pem.trim() === signing.trim())) return false;
    this.materialSigningCa = undefined;
    return true;
  }

  /** The fingerprint of `caPem` (the signing CA), computed once per certificate (the renewal check runs every second). */
  private fingerprintOf(caPem: string): string {
    if (this.fingerprintCache?.pem !== caPem) this.fingerprintCache = { pem: caPem, fingerprint: certificateFingerprint(caPem) };
    return this.fingerprintCache.fingerprint;
  }

  /** Whether `certificatePem` (this node's) is signed by `caPem`, checked once per pair (the renewal check runs every second). */
  private signedBy(certificatePem: string, caPem: string): boolean {
    const cached = this.signedByCache;
    if (cached?.certificatePem === certificatePem && cached.caPem === caPem) return cached.signed;
    const signed = certificateSignedBy(certificatePem, [caPem], this.context.nodeId);
    this.signedByCache = { certificatePem, caPem, signed };
    return signed;
  }

  /** The facts of this node's certificate, parsed once per certificate (the renewal check runs every second). */
  private factsOf(certificatePem: string): CertificateFacts {
    if (this.factsCache?.pem !== certificatePem) this.factsCache = { pem: certificatePem, facts: certificateFacts(certificatePem) };
    return this.factsCache.facts;
  }

  private install(material: TlsMaterial): void {
    this.context.dataDir.writeTls(material);
    this.credentials.update(material);
  }

  private openCa(): { authority: CertificateAuthority; caPems: string[] } {
    const ca = this.context.machine.ca();
    const clusterKey = this.context.clusterKey();
    if (ca === undefined || clusterKey === undefined) throw new AgentError('start-failed', 'the cluster has no CA in its state yet; retry');
    const opened = openSecret(clusterKey, { ciphertext: ca.keySealed, nonce: ca.keyNonce }, CA_KEY_ASSOCIATED_DATA);
    if (!opened.ok) throw new AgentError('start-failed', 'the cluster CA\'s key does not open with this node\'s cluster key');
    return { authority: { certificatePem: ca.certificates[0]!, keyPem: Buffer.from(opened.plaintext).toString('utf8') }, caPems: [...ca.certificates] };
  }
}
