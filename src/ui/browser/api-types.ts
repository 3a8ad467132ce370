/**
 * The API's answers as the UI reads them: the fields it shows, nothing more.
 * The server's own types (src/api/answers.ts, src/state/types.ts) live in
 * the Node build, which this browser build cannot import; src/api/ui-view-types.ts
 * checks at compile time that each server answer still fits the view here,
 * so a renamed or retyped field breaks the build instead of the page.
 */

/** Resource amounts: CPU in thousandths of a core, memory in bytes. */
export interface ResourcesView {
  cpuMillis?: number;
  memoryBytes?: number;
}

/** `GET /v1/status`. */
/** One election the serving node saw (GET /v1/elections). */
export interface ElectionView {
  term: number;
  /** Empty while the term had no leader (a step-down, or before one was elected). */
  leader: string;
  seenAt: number;
  leaderSeenAt?: number;
  reason: 'start' | 'timeout' | 'transfer' | 'lost-quorum' | 'unknown';
}

export interface StatusView {
  node: string;
  leader: string;
  role: string;
  term: number;
  commit: number;
  applied: number;
  index: number;
  voters: string[];
  learners: string[];
  version: string;
}

/** One node of `GET /v1/nodes`. */
export interface NodeView {
  id: string;
  addresses: { api: string; peer: string; gossip: string };
  labels: Record<string, string>;
  resources: ResourcesView;
  status: 'up' | 'suspect' | 'down' | 'left';
  role: 'voter' | 'learner' | 'none';
  lastSeenAt: number;
  statusSince?: number;
  leader: boolean;
  gossip?: { status: 'alive' | 'suspect' | 'dead' | 'left'; incarnation: number };
}

/** The parts of an app version's spec the UI shows. */
export interface AppSpecView {
  image?: string;
  command?: string[];
  reservations: ResourcesView;
}

/** One kept version of an app. */
export interface AppVersionView {
  version: number;
  spec: AppSpecView;
  deployedAt: number;
}

/** An app's current or last rollout. */
export interface RolloutView {
  id: number;
  kind: 'update' | 'rollback';
  strategy: 'rolling' | 'blue-green' | 'canary';
  fromVersion: number;
  toVersion: number;
  state: 'running' | 'paused' | 'awaiting-promotion' | 'succeeded' | 'rolled-back' | 'superseded';
  message: string;
  startedAt: number;
  updatedAt: number;
  done: number;
  total: number;
  canaryInstances?: number;
  weights?: { version: number; percent: number }[];
}

/** One app of `GET /v1/apps`. */
export interface AppSummaryView {
  tenant: string;
  name: string;
  version: number;
  replicas: number;
  versions: AppVersionView[];
  rollout?: RolloutView;
  unplaceable?: { count: number; reasons: string[] };
  project?: string;
}

/** The state an instance reports. */
export type InstanceStateView = 'pending' | 'starting' | 'running' | 'healthy' | 'unhealthy' | 'exited' | 'oom-killed' | 'failed' | 'stopped';

/** One instance of `GET /v1/instances` or of an app. */
export interface InstanceView {
  id: string;
  tenant: string;
  app: string;
  version: number;
  slot: number;
  node?: string;
  desired: 'running' | 'stopped';
  status: { state: InstanceStateView; message?: string; exitCode?: number; since?: number; reportedAt: number };
  failures?: number;
}

/** `GET /v1/apps/:tenant/:name`. */
export interface AppDetailView extends AppSummaryView {
  instances: InstanceView[];
}

/** A tenant's limits; an absent field is unlimited. */
export interface QuotaView {
  cpuMillis?: number;
  memoryBytes?: number;
  instances?: number;
  apps?: number;
  volumes?: number;
  storageBytes?: number;
}

/** One tenant of `GET /v1/tenants`. */
export interface TenantView {
  name: string;
  quota: QuotaView;
  usage: Required<QuotaView>;
  createdAt: number;
}

/** One entry of `GET /v1/history`. */
export interface HistoryEntryView {
  index: number;
  time: number;
  actor: string;
  command: string;
  target: string;
  summary: string;
}

/** One app of `POST /v1/deploy`'s answer. */
export interface DeployedAppView {
  tenant: string;
  name: string;
  version: number;
  replicas: number;
  rollout?: number;
  unchanged?: boolean;
}

/** `POST /v1/deploy` (without a dry run). */
export interface DeployAnswerView {
  apps: DeployedAppView[];
  warnings: string[];
}

/** The body of every error answer. */
export interface ErrorBodyView {
  error: { code: string; message: string; field?: string };
}
