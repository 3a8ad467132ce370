/**
 * Which tenant networks an app's instances join: the one rule the state,
 * the leader's attach plan, discovery and the executor share. Pure, and
 * light (types only), so discovery and the proxy's workers load nothing of
 * the command modules for it.
 */
import type { App } from './types.js';

/** The network every tenant gets, and that an app naming none is on. */
export const DEFAULT_NETWORK = 'default';

/** The networks an instance of `spec` joins, in order (the first gives `eth0`): the spec's own, or its tenant's `default`. */
export function specNetworks(spec: { networks?: readonly string[] }): readonly string[] {
  return spec.networks ?? [DEFAULT_NETWORK];
}

/** The networks of `app`'s `version` (the app, or the version, no longer kept: the tenant's `default`). */
export function versionNetworks(app: Pick<App, 'versions'> | undefined, version: number): readonly string[] {
  return specNetworks(app?.versions.find((entry) => entry.version === version)?.spec ?? {});
}
