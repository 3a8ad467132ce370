/**
 * What a tenant's settings allow its apps on a node (`TenantSettings`):
 * checked when an app is deployed, and again by each node's executor before
 * every start (a setting taken away after the deploy still holds). Pure: no
 * Node API.
 */
import { DEFAULT_CAPABILITIES, LINUX_CAPABILITIES } from './capabilities.js';
import type { AppSpec, TenantSettings } from './types.js';

/** One refusal: the spec field to blame (relative to the spec) and the sentence to show. */
export interface ConfinementProblem {
  field: string;
  text: string;
}

/**
 * The first thing `spec` does that `settings` do not allow, or undefined.
 * Without `hostMounts`: no host path in `volumes`. Without `hostUsers`: a
 * process app names no `user` (it runs as the tenant's own user), and an
 * image app does not name user 0 / root.
 */
export function confinementProblem(spec: AppSpec, settings: TenantSettings | undefined): ConfinementProblem | undefined {
  const how = (flag: string): string => `a cluster-admin can allow it with \`hivemind tenants update ${spec.tenant} ${flag}\``;
  if (settings?.hostMounts !== true) {
    for (const [position, mount] of spec.volumes.entries()) {
      if (!mount.source.startsWith('/')) continue;
      return {
        field: `volumes[${position}].source`,
        text: `host path "${mount.source}" cannot be mounted: tenant "${spec.tenant}" may not bind host paths; use a named volume, or ${how('--host-mounts allow')}`,
      };
    }
  }
  if (settings?.hostUsers !== true && spec.user !== undefined) {
    if (spec.image === undefined) {
      return {
        field: 'user',
        text: `process apps of tenant "${spec.tenant}" run as the tenant's own unprivileged user, so user "${spec.user}" cannot be chosen; leave user out, or ${how('--host-users allow')}`,
      };
    }
    if (isRootUser(spec.user)) {
      return { field: 'user', text: `user "${spec.user}" is root: tenant "${spec.tenant}" may not run apps as root; name another user, or ${how('--host-users allow')}` };
    }
  }
  return capabilityProblem(spec, settings?.capabilities ?? []);
}

/** `cap_add` takes the default set and what the tenant allows (`TenantSettings.capabilities`); `ALL` only with all allowed. */
function capabilityProblem(spec: AppSpec, allowed: readonly string[]): ConfinementProblem | undefined {
  for (const [position, name] of (spec.container?.capAdd ?? []).entries()) {
    const ok = name === 'ALL' ? LINUX_CAPABILITIES.every((each) => DEFAULT_CAPABILITIES.includes(each) || allowed.includes(each)) : DEFAULT_CAPABILITIES.includes(name) || allowed.includes(name);
    if (ok) continue;
    return {
      field: `container.capAdd[${position}]`,
      text: `capability ${name} cannot be added: tenant "${spec.tenant}" may add only the default capabilities${allowed.length > 0 ? ` and ${allowed.join(', ')}` : ''}; a cluster-admin can allow it with \`hivemind tenants update ${spec.tenant} --capabilities ${[...allowed, name].join(',')}\``,
    };
  }
  return undefined;
}

/** Whether Compose's `user:` names root (`0`, `root`, with any group). */
export function isRootUser(user: string): boolean {
  const name = user.split(':', 1)[0]!.trim();
  return name === 'root' || /^0+$/.test(name);
}
