/**
 * Which versions of an app take traffic, and in what shares, as its rollout
 * says. Pure: the app record and the versions that have serving instances.
 *
 * - canary (and a promoted canary rolling the rest): `rollout.weights`;
 * - blue-green until promoted: the old version only ("blue"); `app.promote`
 *   retires the old instances, and traffic moves to the new ones at once;
 * - a rollback (`app.abort`, or an automatic one): the restored version;
 * - anything else (no rollout, a rolling update, a finished rollout): every
 *   serving instance alike.
 *
 * A version without serving instances gets no share: its weight goes to the
 * others, so a split never sends requests nowhere while instances serve.
 */
import type { App } from '../state/types.js';

/** A share of an app's traffic. Percents of one split add up to 100. */
export interface VersionShare {
  readonly version: number;
  readonly percent: number;
}

const ACTIVE_STATES: ReadonlySet<string> = new Set(['running', 'paused', 'awaiting-promotion']);

/** The split in force, or undefined when every serving instance takes traffic alike. */
export function trafficSplitOf(app: App, servingVersions: ReadonlySet<number>): VersionShare[] | undefined {
  const rollout = app.rollout;
  if (rollout === undefined || !ACTIVE_STATES.has(rollout.state)) return undefined;
  let wanted: VersionShare[] | undefined;
  if (rollout.weights !== undefined && rollout.weights.length > 0) wanted = rollout.weights;
  else if (rollout.kind === 'rollback') wanted = [{ version: rollout.toVersion, percent: 100 }];
  else if (rollout.strategy === 'blue-green') wanted = [{ version: rollout.fromVersion, percent: 100 }];
  if (wanted === undefined) return undefined;
  const present = wanted.filter((share) => share.percent > 0 && servingVersions.has(share.version));
  const total = present.reduce((sum, share) => sum + share.percent, 0);
  if (total === 0) return undefined;
  if (present.length === 1 && servingVersions.size === 1) return undefined;
  return present.map((share) => ({ version: share.version, percent: (100 * share.percent) / total }));
}
