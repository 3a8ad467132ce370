/**
 * The key-value server's flags, parsed and validated (node:util parseArgs).
 * Bad flags come back as one message naming the flag and the problem.
 */
import { parseArgs } from 'node:util';

export const USAGE = `usage: node dist/consensus/server/main.js --id ID --data-dir DIR
    --peer-listen HOST:PORT --client-listen HOST:PORT
    --cluster ID=PEER_HOST:PORT/CLIENT_HOST:PORT,... [--tick-ms 50]
    [--election-ticks 10] [--heartbeat-ticks 1] [--snapshot-every 10000]
    [--tls-dir DIR]

  --cluster lists the founding voters with their peer and client addresses. A node
  whose data directory is empty bootstraps the cluster from it; a node with data
  starts from its disk, and uses --cluster only for the addresses of its peers.

  --tls-dir turns on mutual TLS on both ports. DIR holds ca.pem, this node's
  ID.key, and MEMBER.pem for every member of --cluster, all signed by that CA
  (consensus/server/tls.ts). Peers are known by their certificates; a client
  presents any certificate of the CA. Without it both ports are plaintext.`;

/** One member named by --cluster. */
export interface ClusterMember {
  id: string;
  peerAddress: string;
  clientAddress: string;
}

/** The validated settings of one server process. */
export interface ServerSettings {
  id: string;
  dataDirectory: string;
  peerListen: string;
  clientListen: string;
  cluster: ClusterMember[];
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  snapshotEveryEntries: number;
  /** Mutual TLS on both ports from this directory's PEM files; undefined: plaintext. */
  tlsDirectory: string | undefined;
}

export type Parsed = { ok: true; settings: ServerSettings } | { ok: false; error: string };

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Parses `argv` (without the node binary and script). */
export function parseCommandLine(argv: string[]): Parsed {
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        id: { type: 'string' },
        'data-dir': { type: 'string' },
        'peer-listen': { type: 'string' },
        'client-listen': { type: 'string' },
        cluster: { type: 'string' },
        'tick-ms': { type: 'string', default: '50' },
        'election-ticks': { type: 'string', default: '10' },
        'heartbeat-ticks': { type: 'string', default: '1' },
        'snapshot-every': { type: 'string', default: '10000' },
        'tls-dir': { type: 'string' },
      },
    }).values as Record<string, string | undefined>;
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  for (const flag of ['id', 'data-dir', 'peer-listen', 'client-listen', 'cluster']) {
    if (values[flag] === undefined || values[flag] === '') return { ok: false, error: `--${flag} is required` };
  }
  const id = values.id!;
  if (!ID_PATTERN.test(id)) return { ok: false, error: `--id "${id}" is not a node id (letters, digits, "_", ".", "-"; at most 64)` };
  for (const flag of ['peer-listen', 'client-listen']) {
    if (!isHostPort(values[flag]!)) return { ok: false, error: `--${flag} "${values[flag]}" is not HOST:PORT` };
  }
  const cluster = parseCluster(values.cluster!);
  if (!cluster.ok) return cluster;
  if (!cluster.members.some((member) => member.id === id)) {
    return { ok: false, error: `--cluster does not name this node "${id}"; list every founding voter, this one included` };
  }
  const numbers: Record<string, number> = {};
  for (const [flag, min, max] of [
    ['tick-ms', 1, 60_000],
    ['election-ticks', 2, 10_000],
    ['heartbeat-ticks', 1, 10_000],
    ['snapshot-every', 1, 1_000_000_000],
  ] as const) {
    const text = values[flag]!;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      return { ok: false, error: `--${flag} "${text}" is not a whole number from ${min} to ${max}` };
    }
    numbers[flag] = value;
  }
  if (numbers['heartbeat-ticks']! >= numbers['election-ticks']!) {
    return { ok: false, error: '--heartbeat-ticks must be below --election-ticks' };
  }
  if (values['tls-dir'] === '') return { ok: false, error: '--tls-dir is empty; give the directory of the PEM files, or leave the flag out for plaintext' };
  return {
    ok: true,
    settings: {
      id,
      dataDirectory: values['data-dir']!,
      peerListen: values['peer-listen']!,
      clientListen: values['client-listen']!,
      cluster: cluster.members,
      tickMs: numbers['tick-ms']!,
      electionTicks: numbers['election-ticks']!,
      heartbeatTicks: numbers['heartbeat-ticks']!,
      snapshotEveryEntries: numbers['snapshot-every']!,
      tlsDirectory: values['tls-dir'],
    },
  };
}

function parseCluster(text: string): { ok: true; members: ClusterMember[] } | { ok: false; error: string } {
  const members: ClusterMember[] = [];
  for (const item of text.split(',')) {
    const match = /^([^=]+)=([^/]+)\/(.+)$/.exec(item.trim());
    if (!match) return { ok: false, error: `--cluster item "${item}" is not ID=PEER_HOST:PORT/CLIENT_HOST:PORT` };
    const [, id, peerAddress, clientAddress] = match as unknown as [string, string, string, string];
    if (!ID_PATTERN.test(id)) return { ok: false, error: `--cluster item "${item}": "${id}" is not a node id` };
    if (!isHostPort(peerAddress)) return { ok: false, error: `--cluster item "${item}": "${peerAddress}" is not HOST:PORT` };
    if (!isHostPort(clientAddress)) return { ok: false, error: `--cluster item "${item}": "${clientAddress}" is not HOST:PORT` };
    if (members.some((member) => member.id === id)) return { ok: false, error: `--cluster names "${id}" twice` };
    members.push({ id, peerAddress, clientAddress });
  }
  return { ok: true, members };
}

function isHostPort(text: string): boolean {
  const match = /^(.+):(\d{1,5})$/.exec(text);
  return match !== null && match[1]!.length > 0 && Number(match[2]) <= 65_535;
}
