/**
 * Linux capabilities by name, and the default set an instance runs with
 * (containerd's and Docker's). `cap_add` may add a capability outside the
 * default set only where the tenant allows it (`TenantSettings.capabilities`).
 * Pure.
 */

/** Every capability Linux knows (up to 6.x), with the `CAP_` prefix. */
export const LINUX_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** The capabilities containerd gives a container by default. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` as `CAP_NET_ADMIN`; `ALL` stays `ALL`. Does not check that the name exists. */
export function capabilityName(written: string): string {
  const upper = written.trim().toUpperCase();
  if (upper === 'ALL') return upper;
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

/** Whether `name` (as `capabilityName` gives it) is a Linux capability or `ALL`. */
export function isCapability(name: string): boolean {
  return name === 'ALL' || LINUX_CAPABILITIES.includes(name);
}

/**
 * The capability set of an instance, as Docker makes it: `add` with `ALL`
 * is every capability less `drop`; `drop` with `ALL` is `add` alone; else
 * the default set less `drop`, plus `add`. Sorted as LINUX_CAPABILITIES
 * lists them, so equal settings give equal sets.
 */
export function effectiveCapabilities({ add = [], drop = [] }: { add?: readonly string[]; drop?: readonly string[] }): string[] {
  let set: Set<string>;
  if (add.includes('ALL')) set = new Set(LINUX_CAPABILITIES.filter((name) => !drop.includes(name)));
  else if (drop.includes('ALL')) set = new Set(add);
  else set = new Set([...DEFAULT_CAPABILITIES.filter((name) => !drop.includes(name)), ...add]);
  return LINUX_CAPABILITIES.filter((name) => set.has(name));
}
