/**
 * The nodes' workload processes as the hosts see them, read from /proc (the
 * test hosts share the machine's process namespace; only the network is
 * theirs).
 *
 * The process runtime (src/executor/process-runtime.ts) starts each workload
 * as `/bin/sh -c WRAPPER hivemind-process <data-dir>/executor/process/<id>.exit
 * command...`, the leader of its own process group; the command runs as its
 * child in that group. So a command's process group leader names both the
 * node (its data directory) and the instance (the exit file).
 *
 * Workloads outlive a killed agent by design (a restarted agent adopts them),
 * so the harness kills them itself when it tears the hosts down.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, relative, sep } from 'node:path';
import type { ObservedProcess } from './deploy-checks.js';

const WRAPPER_NAME = 'hivemind-process';
const EXIT_SUFFIX = '.exit';

function processIds(): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number);
}

function commandLine(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return text.length === 0 ? undefined : text.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** The process group of `pid` (field 5 of /proc/PID/stat; the name in parentheses may hold spaces). */
function processGroup(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[2]);
  } catch {
    return undefined;
  }
}

/** The wrapper's exit file, if `argv` is a process-runtime wrapper. */
function wrapperExitFile(argv: readonly string[] | undefined): string | undefined {
  if (argv === undefined || argv[0] !== '/bin/sh' || argv[1] !== '-c' || argv[3] !== WRAPPER_NAME) return undefined;
  return argv[4];
}

/**
 * The processes running exactly `command` (such as `["sleep", "100000"]`)
 * whose process-runtime wrapper lives under `dataRoot/<node>/`, with the
 * node's name and the instance id.
 */
export function findWorkloadProcesses(dataRoot: string, command: readonly string[]): ObservedProcess[] {
  const found: ObservedProcess[] = [];
  for (const pid of processIds()) {
    const argv = commandLine(pid);
    if (argv === undefined || argv.length !== command.length || argv.some((part, position) => part !== command[position])) continue;
    const group = processGroup(pid);
    if (group === undefined) continue;
    const exitFile = wrapperExitFile(commandLine(group));
    if (exitFile === undefined) continue;
    const path = relative(dataRoot, exitFile);
    if (path.startsWith('..') || !exitFile.endsWith(EXIT_SUFFIX)) continue;
    found.push({ pid, node: path.split(sep)[0]!, instanceId: basename(exitFile, EXIT_SUFFIX) });
  }
  return found;
}

/**
 * Kills, with SIGKILL, the process group of every process-runtime wrapper
 * whose command line names `root` (a data folder, or a folder name prefix),
 * and so the workloads in them. Returns how many groups it killed.
 */
export function killWorkloadsUnder(root: string): number {
  let killed = 0;
  for (const pid of processIds()) {
    const exitFile = wrapperExitFile(commandLine(pid));
    if (exitFile === undefined || !exitFile.startsWith(root)) continue;
    try {
      process.kill(-pid, 'SIGKILL');
      killed++;
    } catch {
      // Gone in between.
    }
  }
  return killed;
}
