/**
 * What the node network file lists of the tenant networks while an overlay
 * pass is under way: the executor attaches to what the file lists, so a
 * change reaches the file in the order that keeps attaches safe. Pure.
 *
 * - A network the state made just now is listed `pending` at once (its
 *   bridge comes with the pass): an executor that saw none of a tenant's
 *   networks would attach to the node subnet instead of waiting.
 * - A slice given back (the node no longer holds it, or holds another) is
 *   listed `pending` BEFORE the pass reads the links to delete its bridge
 *   and address store, and a network no longer carried goes from the list.
 *   An attach checks the file again after its CNI ADD
 *   (`CniNetwork.confirmSlices`): it either sees the slice gone and undoes
 *   itself, or its container's veth was a port of the bridge before the
 *   pass read the links, and the bridge and its store stay while the
 *   container hangs on it. Either way no lease is written into a store the
 *   pass removes.
 * - A slice newly held stays `pending` until the pass made its bridge (the
 *   pass's own write after the devices lists it ready).
 */
import type { NodeNetworkReady } from '../node/node-network.js';

type Listed = NonNullable<NodeNetworkReady['networks']>;

/**
 * The networks to list before the pass's devices, from those `written`
 * last and those the pass will list (`next`); undefined when the file
 * needs no change.
 */
export function listedBeforeDevices(written: Listed | undefined, next: Listed | undefined): Listed | undefined {
  const before = written ?? {};
  const listed: Listed = {};
  let changed = false;
  for (const [key, entry] of Object.entries(next ?? {})) {
    const known = before[key];
    if (known === undefined) {
      listed[key] = { state: 'pending', network: key };
      changed = true;
    } else if (known.state === 'ready' && (entry.state !== 'ready' || entry.bridge !== known.bridge || entry.subnet !== known.subnet)) {
      listed[key] = { state: 'pending', network: key };
      changed = true;
    } else {
      listed[key] = known;
    }
  }
  // A network no longer carried (deleted, or its tenant no longer named) leaves the list.
  if (Object.keys(before).some((key) => next?.[key] === undefined)) changed = true;
  return changed ? listed : undefined;
}
