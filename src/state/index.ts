// The replicated state: its types, validation and state machine. Pure (no
// Node API); the sealing helpers, which need node:crypto, are in secrets.ts.
export * from './types.js';
export * from './errors.js';
export { validateCommand, validateEnvelope, validateEnvelopeHeader, isCommandType, LIMITS, IDENTIFIER_PATTERN } from './validate.js';
export type { Validated, EnvelopeHeader } from './validate.js';
export { ClusterStateMachine } from './machine.js';
export type { SecretMetadata, InstanceFilter, CheckOptions } from './machine.js';
export { instanceId } from './apply-apps.js';
export { tenantUsage, instanceResources, quotaProblem, overQuota } from './quota.js';
export type { Usage, OverQuota } from './quota.js';
export { ENTITIES_MAX } from './state.js';
export { SNAPSHOT_FORMAT } from './snapshot.js';
export * from './ipam.js';
export { COMMANDS, commandModule, commandVersion } from './commands.js';
export type { CommandModule, CommandProposer } from './command.js';
export { STATE_VERSION, CLUSTER_VERSION_FLOOR, StateVersionError } from './version.js';
