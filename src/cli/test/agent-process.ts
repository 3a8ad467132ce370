/**
 * A real node for the CLI's end-to-end tests, started the way a user starts
 * one: `node bin/hivemind.js agent ...` on loopback, free ports, a temporary
 * data directory. `stop()` ends the process (SIGTERM, then SIGKILL) and
 * removes the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePorts } from '../../../consensus/test/fixtures/free-ports.js';
import { BIN, ROOT, cleanEnv } from './run-cli.js';
import { killWorkloadsUnder } from '../../agent/test/harness.js';
import { dataDirApiAgent } from '../../api/tls.js';
import { readableLogLine } from '../../agent/agent-log.js';

/** How long the node may take to answer its health check. */
export const AGENT_READY_MS_MAX = 30_000;
/** How long the node may take to exit after SIGTERM before it is killed. */
export const AGENT_STOP_MS_MAX = 10_000;

export interface AgentProcess {
  /** `https://127.0.0.1:PORT` (`http://` with `insecureApi`). */
  address: string;
  /** `127.0.0.1:PORT`: where other nodes join through this one. */
  peerAddress: string;
  dataDir: string;
  name: string;
  /** The join token the new cluster printed (`join token: hmca:...::hm1...`, the pinned form). */
  token: string;
  /** Everything the agent wrote to stdout and stderr so far. */
  output(): string;
  /** Settles with the exit code (or the signal) once the process ended, by itself or by `stop`. */
  exited: Promise<number | string | null>;
  /** Ends the agent and resolves with its exit code (or the signal that killed it); removes the data directory unless `keepDataDir`. */
  stop(options?: { keepDataDir?: boolean }): Promise<number | string | null>;
}

export interface StartOptions {
  name?: string;
  /** Join through `seed` with `token` (`hivemind join`), instead of starting a new cluster. */
  join?: { seed: string; token: string };
  /** Restart from this data directory (kept by an earlier `stop`) instead of a fresh one; `token` is the cluster's. */
  restart?: { dataDir: string; token: string };
  /** The data directory of a new node (default: a fresh temporary one); removed by `stop`. */
  dataDir?: string;
  /** Start with `--insecure-api on`: the API in plain HTTP. */
  insecureApi?: boolean;
  /** More flags for `agent` or `join` (`--label zone=a`). */
  extraArgs?: string[];
  /** A command that runs the agent's command line (`unshare --mount -- sh -c '...; exec "$0" "$@"'`): it must exec it, so that signals reach the agent. */
  wrap?: string[];
}

/**
 * Starts one node and waits until its API answers `/v1/health` and, for a
 * new cluster, it printed its join token.
 */
export async function startAgent(options: StartOptions = {}): Promise<AgentProcess> {
  const name = options.name ?? 'n1';
  const dataDir = options.restart?.dataDir ?? options.dataDir ?? mkdtempSync(join(tmpdir(), 'hivemind-cli-agent-'));
  const [apiPort, peerPort, proxyPort, gossipPort, dnsPort] = await freePorts(5);
  const args = [
    BIN,
    ...(options.join ? ['join', options.join.seed, '--token', options.join.token] : ['agent']),
    '--name', name,
    '--data-dir', dataDir,
    '--bind', '127.0.0.1',
    '--api-port', String(apiPort),
    '--peer-port', String(peerPort),
    '--proxy-port', String(proxyPort),
    '--gossip-port', String(gossipPort),
    '--dns-port', String(dnsPort),
    ...(options.insecureApi ? ['--insecure-api', 'on'] : []),
    ...(options.extraArgs ?? []),
  ];
  const [program, ...programArgs] = [...(options.wrap ?? []), process.execPath, ...args];
  const child: ChildProcess = spawn(program!, programArgs, { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  // The agent's log lines are JSON on a pipe: kept in their readable form, a whole line at a time.
  let partialLine = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    const lines = (partialLine + text).split('\n');
    partialLine = lines.pop() ?? '';
    for (const line of lines) output += `${readableLogLine(line)}\n`;
  });
  const exited = new Promise<number | string | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const address = `${options.insecureApi ? 'http' : 'https'}://127.0.0.1:${apiPort}`;
  const agent: AgentProcess = {
    address,
    peerAddress: `127.0.0.1:${peerPort}`,
    dataDir,
    name,
    token: '',
    output: () => output,
    exited,
    async stop(stopOptions = {}) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), AGENT_STOP_MS_MAX);
      const result = await exited;
      clearTimeout(timer);
      if (!stopOptions.keepDataDir) {
        killWorkloadsUnder(dataDir);
        rmSync(dataDir, { recursive: true, force: true });
      }
      return result;
    },
  };
  const deadline = Date.now() + AGENT_READY_MS_MAX;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await agent.stop();
      throw new Error(`the agent exited with ${child.exitCode} before serving:\n${output}`);
    }
    try {
      // Before the node has its CA (tls/ca.crt), this throws: not serving yet.
      const response = await request(`${address}/v1/health`, options.insecureApi ? {} : { dispatcher: dataDirApiAgent(dataDir) });
      await response.body.text();
      // Only a new cluster prints its token; a joiner or a restarted node was given it.
      const token = options.join?.token ?? options.restart?.token ?? /^join token: (\S+)$/m.exec(output)?.[1];
      if (response.statusCode === 200 && token !== undefined) return { ...agent, token };
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await agent.stop();
      throw new Error(`the agent did not serve within ${AGENT_READY_MS_MAX} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
