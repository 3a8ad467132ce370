/**
 * The registry of replicated commands: one module per command type (see
 * command.ts). Its type makes the compiler check that every member of the
 * `Command` union (types.ts) has a module, and that each module is of its
 * own type; a command type without one fails `tsc`.
 *
 * Pure: no Node API.
 */
import type { CommandModule } from './command.js';
import { clusterVersionCommand } from './apply-cluster.js';
import { tenantCreateCommand, tenantDeleteCommand, tenantUpdateCommand } from './apply-tenants.js';
import { appDeleteCommand, appDeployCommand, appDeployManyCommand, appRollbackCommand, appScaleCommand } from './apply-apps.js';
import { instancePlaceCommand, instanceStatusCommand, nodeHeartbeatCommand, nodeLabelCommand, nodePortsCommand, nodeRegisterCommand, nodeRemoveCommand, nodeRoleCommand, nodeStatusCommand } from './apply-nodes.js';
import { appAbortCommand, appPromoteCommand, appRebalanceCommand, appUnplaceableCommand, instancePreemptCommand, instanceRemoveCommand, instanceRescheduleCommand, rolloutStepCommand } from './apply-rollouts.js';
import { caSetCommand, nodeCertificateCommand } from './apply-ca.js';
import { networkConfigureCommand } from './apply-network.js';
import { networkAttachCommand, networkCreateCommand, networkDeleteCommand, networkDetachCommand } from './apply-tenant-networks.js';
import { policyDeleteCommand, policyPutCommand, secretDeleteCommand, secretPutCommand, volumeBindCommand, volumeCreateCommand, volumeDeleteCommand, volumeMoveCommand, volumeMoveEndCommand, volumeReportCommand, volumeSetIoCommand } from './apply-resources.js';
import { kvDeleteCommand, kvPutCommand, tokenSetCommand } from './apply-kv.js';
import { apitokenCreateCommand, apitokenRevokeCommand } from './apply-tokens.js';
import type { Command, CommandType } from './types.js';

/** Every command type's module. */
export const COMMANDS: { readonly [T in CommandType]: CommandModule<T> } = {
  'tenant.create': tenantCreateCommand,
  'tenant.update': tenantUpdateCommand,
  'tenant.delete': tenantDeleteCommand,
  'app.deploy': appDeployCommand,
  'app.deploy-many': appDeployManyCommand,
  'app.scale': appScaleCommand,
  'app.rollback': appRollbackCommand,
  'app.delete': appDeleteCommand,
  'instance.place': instancePlaceCommand,
  'instance.status': instanceStatusCommand,
  'rollout.step': rolloutStepCommand,
  'instance.reschedule': instanceRescheduleCommand,
  'instance.remove': instanceRemoveCommand,
  'instance.preempt': instancePreemptCommand,
  'app.unplaceable': appUnplaceableCommand,
  'app.promote': appPromoteCommand,
  'app.abort': appAbortCommand,
  'app.rebalance': appRebalanceCommand,
  'node.register': nodeRegisterCommand,
  'node.certificate': nodeCertificateCommand,
  'node.status': nodeStatusCommand,
  'node.role': nodeRoleCommand,
  'node.heartbeat': nodeHeartbeatCommand,
  'node.ports': nodePortsCommand,
  'node.label': nodeLabelCommand,
  'node.remove': nodeRemoveCommand,
  'network.configure': networkConfigureCommand,
  'network.create': networkCreateCommand,
  'network.delete': networkDeleteCommand,
  'network.attach': networkAttachCommand,
  'network.detach': networkDetachCommand,
  'policy.put': policyPutCommand,
  'policy.delete': policyDeleteCommand,
  'volume.create': volumeCreateCommand,
  'volume.set-io': volumeSetIoCommand,
  'volume.delete': volumeDeleteCommand,
  'volume.bind': volumeBindCommand,
  'volume.report': volumeReportCommand,
  'volume.move': volumeMoveCommand,
  'volume.move-end': volumeMoveEndCommand,
  'secret.put': secretPutCommand,
  'secret.delete': secretDeleteCommand,
  'kv.put': kvPutCommand,
  'kv.delete': kvDeleteCommand,
  'token.set': tokenSetCommand,
  'apitoken.create': apitokenCreateCommand,
  'apitoken.revoke': apitokenRevokeCommand,
  'ca.set': caSetCommand,
  'cluster.version': clusterVersionCommand,
};

/** The module of `type` (a known command type). */
export function commandModule<T extends CommandType>(type: T): CommandModule<T> {
  return COMMANDS[type] as CommandModule<T>;
}

/** The state version `command` needs: its module's `since`, or more for a field added later. */
export function commandVersion(command: Command): number {
  const module = COMMANDS[command.type] as CommandModule<CommandType>;
  return module.versionOf === undefined ? module.since : module.versionOf(command as never);
}

/** The command types a member may submit through the leader (those whose proposers include `member`). */
export const MEMBER_COMMAND_TYPES: ReadonlySet<CommandType> = new Set(
  (Object.keys(COMMANDS) as CommandType[]).filter((type) => COMMANDS[type].proposers.includes('member')),
);
