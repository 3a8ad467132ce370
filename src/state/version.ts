/**
 * The version gate of the replicated log. Every envelope a node proposes
 * carries the state version of the code that proposed it; a node whose code
 * is older than an entry's version stops at that entry, saying so, instead of
 * refusing it as malformed while its newer peers apply it (which would make
 * the replicas diverge without a word). Entries written before the gate
 * existed carry no version and count as version 1.
 *
 * Bump STATE_VERSION whenever a change makes an envelope that older code
 * would refuse or apply differently: a new command, a new field, a new rule
 * at apply. Newer code must keep applying every older version the same way.
 */

/** The state version this code proposes and applies (1: before the gate; 2: trust, IPAM, endpoints, proxy routes, policies with CIDRs and egress, API tokens, tenant settings, volume.bind and the volume commands, app projects). */
export const STATE_VERSION = 2;

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
