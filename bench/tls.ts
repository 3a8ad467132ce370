/**
 * The benchmark's certificates, made with the agent's own certificate code
 * (src/security/certificates.ts: ECDSA P-256, `@peculiar/x509`): one CA per
 * run, and per cluster a certificate for every member and one for the load
 * generator. Written in the layout the KV server reads with `--tls-dir`
 * (consensus/server/tls.ts); etcd is given the same files by path.
 */
import { writeFileSync } from 'node:fs';
import { createClusterCa, createNodeKey, issueNodeCertificate, type CertificateAuthority } from '../src/security/certificates.js';
import { tlsFilePaths } from '../consensus/server/tls.js';

/** The name every server certificate carries (beside 127.0.0.1) and every client sends as its TLS server name. */
export const SERVER_NAME = 'localhost';

/** What a client presents and trusts to reach a cluster whose ports speak mutual TLS. */
export interface ClientTls {
  caPem: string;
  keyPem: string;
  certificatePem: string;
  /** Sent as SNI and checked against the server's certificate (a DNS name: no IP address as SNI). */
  serverName: string;
}

/** One cluster's files: the directory in `--tls-dir` layout, and the client's material. */
export interface ClusterTls {
  directory: string;
  caPath: string;
  keyPath(id: string): string;
  certificatePath(id: string): string;
  client: ClientTls;
}

/** The load generator's name in its certificate; not a member id, so the KV server never takes it for a peer. */
const CLIENT_NAME = 'bench-load';

/** A run's certificate authority; `writeCluster` for each cluster that speaks TLS. */
export class BenchCertificates {
  private constructor(private readonly ca: CertificateAuthority) {}

  /** A new CA (loads @peculiar/x509: about a second the first time). */
  static async create(): Promise<BenchCertificates> {
    return new BenchCertificates(await createClusterCa({ now: Date.now(), name: 'Hivemind benchmark CA' }));
  }

  /**
   * Writes `ca.pem`, and `<id>.key` and `<id>.pem` for every member of
   * `memberIds` and for the load generator, into `directory` (which exists).
   * Every certificate names 127.0.0.1 and `SERVER_NAME`, and serves as a
   * server and a client certificate (as the agent's node certificates do).
   */
  async writeCluster(directory: string, memberIds: readonly string[]): Promise<ClusterTls> {
    const paths = tlsFilePaths(directory);
    writeFileSync(paths.ca, this.ca.certificatePem);
    const issue = async (id: string): Promise<{ keyPem: string; certificatePem: string }> => {
      const { keyPem } = await createNodeKey();
      const certificatePem = await issueNodeCertificate(this.ca, keyPem, { nodeId: id, now: Date.now(), addresses: ['127.0.0.1', SERVER_NAME] });
      writeFileSync(paths.key(id), keyPem, { mode: 0o600 });
      writeFileSync(paths.certificate(id), certificatePem);
      return { keyPem, certificatePem };
    };
    for (const id of memberIds) await issue(id);
    const client = await issue(CLIENT_NAME);
    return {
      directory,
      caPath: paths.ca,
      keyPath: paths.key,
      certificatePath: paths.certificate,
      client: { caPem: this.ca.certificatePem, ...client, serverName: SERVER_NAME },
    };
  }
}
