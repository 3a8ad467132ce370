/**
 * Keys for volumes encrypted at rest: the API makes a random key for a
 * `volume.create` that asks for encryption (or whose tenant encrypts every
 * volume) and seals it under the cluster key before proposing, so only
 * ciphertext enters the log (as secrets are sealed).
 */
import { randomBytes } from 'node:crypto';
import { sealSecret, volumeKeyAssociatedData } from '../state/secrets.js';
import { VOLUME_KEY_BYTES, type Command, type Tenant } from '../state/types.js';

type VolumeCreate = Extract<Command, { type: 'volume.create' }>;

/**
 * `command` with a freshly sealed key when `requested` or when its tenant's
 * settings encrypt every volume; unchanged otherwise. A command that already
 * carries a key keeps it.
 */
export function withVolumeKey(command: VolumeCreate, options: { requested: boolean; tenant: Tenant | undefined; clusterKey: () => Uint8Array }): VolumeCreate {
  if (command.encryption !== undefined) return command;
  if (!options.requested && options.tenant?.settings?.encryptVolumes !== true) return command;
  const sealed = sealSecret(options.clusterKey(), new Uint8Array(randomBytes(VOLUME_KEY_BYTES)), volumeKeyAssociatedData(command.tenant, command.name));
  return { ...command, encryption: { ciphertext: sealed.ciphertext, nonce: sealed.nonce } };
}
