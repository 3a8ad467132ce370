/**
 * Rollout routes: promote and abort an app's rollout, and ask for a
 * rebalance. The rollout's progress is part of the app
 * (`GET /v1/apps/:tenant/:name`, field `rollout`; unplaceable reasons in
 * `unplaceable`).
 */
import { ALL_TENANTS, type Command } from '../state/types.js';
import { invalidArgument } from './errors.js';
import { checkName } from './input.js';
import { serve, type Route, type RouteContext } from './router.js';

function tenantAndName(context: RouteContext): { tenant: string; name: string } {
  return { tenant: checkName(context.params.tenant!, 'tenant'), name: checkName(context.params.name!, 'name') };
}

/** Promote, abort, rebalance. */
export const rolloutRoutes: Route[] = [
  serve('POST /v1/apps/:tenant/:name/promote', {
    async write(context) {
      return context.commit([{ type: 'app.promote', ...tenantAndName(context) }]);
    },
  }),
  serve('POST /v1/apps/:tenant/:name/abort', {
    async write(context) {
      return context.commit([{ type: 'app.abort', ...tenantAndName(context) }]);
    },
  }),
  serve('POST /v1/rebalance', {
    async write(context) {
      const command: Command & { type: 'app.rebalance' } = { type: 'app.rebalance' };
      for (const key of ['tenant', 'name'] as const) {
        const value: unknown = context.body[key];
        if (value === undefined) continue;
        if (typeof value !== 'string') throw invalidArgument(key, `${key} must be a name (a string)`);
        command[key] = checkName(value, key);
      }
      if (command.name !== undefined && command.tenant === undefined) command.tenant = 'default';
      // Every tenant's apps: a cluster-wide deployer only.
      context.authorize('deploy', command.tenant ?? ALL_TENANTS);
      return context.commit([command]);
    },
  }),
];
