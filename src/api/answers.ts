/**
 * What the API answers: the types of the 200 answers the contract
 * (contract.ts) declares, shared by the server's handlers (a read's answer is
 * checked against its type) and the CLI. Types only: nothing here runs.
 */
import type { ElectionRecord } from '../node/election-log.js';
import type { DeployPlan } from '../appfile/plan.js';
import type { ImageSummary } from '../executor/containerd/images.js';
import type { VolumeSnapshot } from '../executor/local-volumes.js';
import type { PolicyDecision } from '../network/policy-plan.js';
import type { ApiTokenRecord, App, AppSpec, EgressRule, Instance, NodeRecord, PolicyRule, Tenant, Volume } from '../state/types.js';
import type { Usage } from '../state/quota.js';
import type { AuditEvent } from './audit.js';

/** A text answer (a PEM bundle, metrics), sent as it is. */
export type TextAnswer = string;
/** A chunked answer streamed as it comes (logs, a volume archive). */
export type StreamAnswer = AsyncIterable<Uint8Array>;

/** `GET /v1/status`. */
export interface StatusAnswer {
  node: string;
  /** The leader's id; empty while none is known. */
  leader: string;
  role: string;
  term: number;
  commit: number;
  applied: number;
  /** The state's applied index. */
  index: number;
  voters: string[];
  learners: string[];
  version: string;
  /** The cluster version in force: the newest kind of entry the leader proposes (src/state/version.ts). */
  clusterVersion: number;
  /** The newest state version this node's code applies. */
  stateVersion: number;
}

/** One election the answering node saw (src/node/election-log.ts). */
export type ElectionView = ElectionRecord;

/** `GET /v1/elections`: the elections the answering node saw, newest first (at most 20; its own view, not the cluster's). */
export interface ElectionsAnswer {
  node: string;
  elections: ElectionView[];
}

/** This node's gossip view of one node. */
export interface GossipOfNode {
  status: 'alive' | 'suspect' | 'dead' | 'left';
  incarnation: number;
  /** When the answering node last received a gossip message from it (ms since the epoch); absent for itself or before any. */
  lastHeardAt?: number;
}

/** A node as `GET /v1/nodes` shows it: the record, its Raft role now, whether it leads, and the answering node's gossip view of it. */
export type NodeView = NodeRecord & { leader: boolean; gossip?: GossipOfNode };

/** `GET /v1/token`, `POST /v1/token/rotate`. */
export interface TokenAnswer {
  /** Pinned to the signing CA (`hmca:...`): what a user copies. */
  token: string;
  bareToken: string;
}

/** `GET /v1/ca/status`. */
export interface CaStatusAnswer {
  signing: string | undefined;
  trusted: string[];
  rotating: boolean;
  setIndex: number;
  revoked: number;
  nodes: { id: string; status: string; serial: string | null; notAfter: number | null; issuer: string | null }[];
}

/** A tenant with its usage. */
export type TenantView = Tenant & { usage: Usage };

/** `GET /v1/apps/:tenant/:name`: the app, its current spec, its instances. */
export type AppView = App & { spec: AppSpec; instances: Instance[] };

/** A volume with the apps whose current version mounts it. */
/** A volume as `GET /v1/volumes` answers it: its sealed key is left out, `encrypted` says whether it has one. */
export type VolumeView = Omit<Volume, 'encryption'> & { encrypted: boolean; users: string[] };

/** `GET /v1/policies/test`. */
export type PolicyTestAnswer = PolicyDecision & { from: string; to: string; port: number };

/** `GET /v1/network`. */
export interface NetworkAnswer {
  clusterCidr: string | null;
  nodePrefixLength: number | null;
  serviceCidr: string | null;
  configuredIndex: number | null;
  nodes: { id: string; status: string; subnet: string | null; peerAddress: string; overlay: 'on' | 'off' | 'left' }[];
  services: { tenant: string; app: string; vip: string; ports: readonly { target: number; protocol: string }[]; endpoints: number }[];
  /** Apps with published ports (the routing mesh); absent from older agents. */
  published?: { tenant: string; app: string; ports: readonly { target: number; published: number; protocol: string }[]; endpoints: number }[];
  /** Published ports two apps ask for, or that the node's agent holds: the later app's is not published. */
  publishedConflicts?: { tenant: string; app: string; published: number; protocol: string; heldBy: string }[];
  /** The tenant network pool (null until set); absent from older agents. */
  tenantCidr?: string | null;
  /** Tenant networks with their nodes' slices, by tenant and name (state only: containers do not use them yet); absent from older agents. */
  networks?: { tenant: string; name: string; cidr: string; slices: { node: string; cidr: string }[] }[];
  answeredBy: { node: string; overlay: boolean };
}

/** `GET /v1/network/nodes/:id`. */
export interface NetworkNodeAnswer {
  id: string;
  status: string;
  overlay: 'on' | 'off' | 'left';
  subnet: string | null;
  gateway: string | null;
  peers: { id: string; subnet: string; underlay?: string }[];
  skipped: { id: string; reason: string }[];
  /** The node's slices of tenant networks (absent from older agents). */
  slices?: { tenant: string; network: string; cidr: string }[];
  policy: { destinations: number; chains: number; rules: number } | null;
  services: { vips: number; published?: number; endpoints: number; rules: number };
  /** The routing mesh's way back (absent from older agents, null before the network is configured). */
  mesh?: { returnRoutes: { peer: string; mark: string; table: number; via: string }[]; skipped: { id: string; reason: string }[] } | null;
}

/** `GET /v1/network/apps/:tenant/:name`. */
export interface NetworkAppAnswer {
  tenant: string;
  app: string;
  vip: string | null;
  ports: { target: number; protocol: string }[];
  endpoints: { instance: string; address: string; addresses?: readonly string[]; ports: readonly { target: number; port: number; protocol: string }[] }[];
  policies: { name: string; ingress: PolicyRule[]; egress?: EgressRule[] }[];
  isolation: string;
  serviceChain: { name: string; rules: string[] } | null;
}

/** An API token as lists show it (never its hash). */
export type TokenView = Omit<ApiTokenRecord, 'hash'> & { expired: boolean };

/** `GET /v1/audit`: this node's events; with `all`, every member's and who did not answer. */
export interface AuditAnswer {
  node?: string;
  nodes?: string[];
  unreachable?: { node: string; reason: string }[];
  events: AuditEvent[];
}

/** One app of `POST /v1/deploy`'s answer. */
export interface DeployedApp {
  tenant: string;
  name: string;
  version: number;
  replicas: number;
  /** The id of the rollout the deploy started, when it updated running instances. */
  rollout?: number;
  /** The app was as the file says already: no new version, nothing restarted. */
  unchanged?: boolean;
}

/** `POST /v1/deploy` with `dryRun`: the plan, what the deploy would create, and the refusal it would meet. */
export interface DryRunAnswer extends DeployPlan {
  dryRun: true;
  creates: { volumes: string[]; secrets: string[]; networks?: string[] };
  refusal?: { code: string; message: string; field?: string };
  warnings: string[];
}

/** `POST /v1/deploy`: what was deployed, or with `dryRun` the plan. */
export type DeployAnswer = { dryRun?: undefined; project?: string; apps: DeployedApp[]; warnings: string[] } | DryRunAnswer;

/** `GET /v1/images`: the images of the node asked. */
export interface ImageListAnswer {
  node: string;
  images: ImageSummary[];
}

/** What an image route did on the node asked. */
export interface ImagesAnswer {
  node: string;
  images: string[];
}

/** A snapshot as the API shows it. */
export type SnapshotView = VolumeSnapshot & { takenAt: string };

/**
 * What a write answers: the applied command's result value. The state
 * machine decides it (src/state/machine.ts); `Value` names the fields clients
 * read, as the contract's word: the compiler cannot check it against the
 * command's result, which the state types as `unknown`.
 */
export type WriteAnswer<Value extends object = Record<string, unknown>> = Value & Record<string, unknown>;
