/**
 * Runs one network tool (`ip`, `bridge`, `iptables-save`, `iptables-restore`)
 * with `input` on its stdin, killed after COMMAND_TIMEOUT_MS. Never rejects:
 * a tool that cannot start answers code -1 with the reason in `stderr`.
 */
import { spawn } from 'node:child_process';

/** How long one run may take. */
const COMMAND_TIMEOUT_MS = 10_000;

/** What a run answered; `code` is -1 when the tool could not start or was killed. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCommand(file: string, args: readonly string[], input = ''): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: error.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
