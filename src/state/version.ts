/**
 * The version gate of the replicated log.
 *
 * - STATE_VERSION: the highest state version this code applies. Each node
 *   advertises it in its record (STATE_VERSION_LABEL, types.ts).
 * - The cluster version: replicated, raised only by `cluster.version`, which
 *   the leader proposes once every member advertises the new version
 *   (apply-cluster.ts); before the first, CLUSTER_VERSION_FLOOR.
 * - Every command has a version (its module's `since`, commands.ts). A
 *   command newer than the cluster version is refused by `check` and at
 *   apply, and the leader does not propose it: during a rolling upgrade no
 *   entry reaches the log that an older member would apply differently.
 * - Every envelope carries the version it is written in (the cluster version
 *   when proposed, or the command's own when higher); a node whose code is
 *   older than an entry's version stops at that entry, saying so, instead of
 *   refusing it as malformed while its newer peers apply it (which would make
 *   the replicas diverge without a word). Entries written before the gate
 *   existed carry no version and count as version 1.
 *
 * Bump STATE_VERSION whenever a change makes an envelope that older code
 * would refuse or apply differently: a new command, a new field, a new rule
 * at apply; give the new command (or field, through `versionOf`) that
 * version. Newer code must keep applying every older version the same way.
 */

/**
 * The state version this code applies. 1: before the gate. 2: trust, IPAM,
 * endpoints, proxy routes, policies with CIDRs and egress, API tokens, tenant
 * settings, volume.bind and the volume commands, app projects. 3: the
 * cluster version (`cluster.version`). 4: encrypted volumes
 * (ENCRYPTED_VOLUMES_VERSION), replicas that cannot share their volume's
 * node refused (VOLUME_FIT_VERSION), the envelope's `traceparent`
 * (TRACE_CONTEXT_VERSION), an app's container settings and configs and a
 * tenant's capabilities (CONTAINER_SETTINGS_VERSION), an instance's failure
 * cause (`instance.reschedule`'s `reason`, `Instance.lastFailure`), a node's
 * host ports (`node.ports`), node labels set by an operator (`node.label`),
 * a `rollout.step`'s retirements naming their keeper, the step refused when
 * the keeper no longer serves (KEEPERS_STATE_VERSION, apply-rollouts.ts).
 * 5: tenant networks (TENANT_NETWORKS_VERSION: `network.create`,
 * `network.delete`, `network.attach`, `network.detach`, `network.configure`'s
 * `tenantCidr`, a tenant's `default` network made by `tenant.create`); a
 * `rollout.step` retiring an earlier version's unavailable instance on
 * condition that it does not serve (`retire[].unlessServing`, refused when it
 * serves; UNLESS_SERVING_STATE_VERSION, apply-rollouts.ts).
 * 6: an app's networks (APP_NETWORKS_VERSION: `AppSpec.networks`,
 * `app.deploy-many`'s `networks`, `network.delete` refused while an app's
 * spec names the network).
 * 7: aliases on some of an app's networks alone (NETWORK_ALIASES_VERSION:
 * `AppSpec.hivemind.networkAliases`); every node carries every tenant
 * network, no per-node switch (TENANT_NETWORKS_EVERYWHERE_VERSION).
 */
export const STATE_VERSION = 7;

/**
 * From this cluster version every node puts containers on their tenant's
 * networks, with no per-node switch (src/node/carried-networks.ts): the
 * first release that does so applies this version, so the cluster reaches
 * it only once every member runs such a release. Nothing at apply changes.
 */
export const TENANT_NETWORKS_EVERYWHERE_VERSION = 7;

/** The state version of an app's aliases per network (`HivemindSpec.networkAliases`). */
export const NETWORK_ALIASES_VERSION = 7;

/** The state version of an app's networks (`AppSpec.networks`) and the networks an `app.deploy-many` creates (its `networks`). */
export const APP_NETWORKS_VERSION = 6;

/** The state version of tenant networks (apply-tenant-networks.ts); from this cluster version `tenant.create` also makes the tenant's `default` network once the pool is set. */
export const TENANT_NETWORKS_VERSION = 5;

/** The state version of `volume.create`'s `encryption` and `node`, and the tenant setting `encryptVolumes`. */
export const ENCRYPTED_VOLUMES_VERSION = 4;

/** From this cluster version, a deploy or scale whose replicas share a node-local volume but cannot all run on one node is refused (volume-fit.ts). */
export const VOLUME_FIT_VERSION = 4;

/**
 * The first state version whose envelopes may carry a `traceparent` (types.ts,
 * Envelope). Older code refuses an envelope with a field it does not know, so
 * the leader writes one only once the cluster version is this or later, and
 * such an entry carries this version: an older node stops at it instead of
 * refusing it while its peers apply it.
 */
export const TRACE_CONTEXT_VERSION = 4;

/** The state version of an app's container settings (`AppSpec.container`) and configs (`AppSpec.configs`), and of a tenant's capabilities. */
export const CONTAINER_SETTINGS_VERSION = 4;

/**
 * The cluster version of a state that never applied `cluster.version`: the
 * releases before it wrote entries of state version 2 at most, and applied
 * every command of version 2.
 */
export const CLUSTER_VERSION_FLOOR = 2;

/** An entry this node's code is too old to apply. The node stops; upgrading it and starting it again resumes at that entry. */
export class StateVersionError extends Error {
  readonly code = 'STATE_VERSION_TOO_NEW';

  constructor(
    readonly index: number,
    readonly version: number,
  ) {
    super(
      `log entry ${index} was written by a Hivemind of state version ${version}, and this node's is ${STATE_VERSION}: ` +
        'upgrade this node and start it again (it stops here rather than apply the entry differently from its peers)',
    );
  }
}
