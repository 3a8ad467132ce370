// `hivemind agent|join|recover` run with the node's commands only
// (agent-program.ts): the same commands, options, help and global flags as
// in the whole tree, and a usage error reads the same; started as a user
// starts it (bin/hivemind.js), it answers as before.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildAgentProgram } from '../agent-program.js';
import { buildProgram } from '../program.js';

const HIVEMIND = fileURLToPath(new URL('../../../../bin/hivemind.js', import.meta.url));
const NODE_COMMANDS = ['agent', 'join', 'recover'];

/** What `<command> --help` prints: the help and the text added around it. */
function helpOutput(command: Command): string {
  let text = '';
  command.configureOutput({ ...command.configureOutput(), writeOut: (chunk: string) => void (text += chunk) });
  command.outputHelp();
  return text;
}

function commandNamed(program: Command, name: string): Command {
  const command = program.commands.find((each) => each.name() === name);
  assert.ok(command, `the tree has ${name}`);
  return command!;
}

test('the node\'s commands, their options and help are those of the whole tree', () => {
  const whole = buildProgram();
  const small = buildAgentProgram();
  assert.equal(small.commands.map((command) => command.name()).sort(), [...NODE_COMMANDS].sort());
  assert.equal(small.options.map((option) => option.flags), whole.options.map((option) => option.flags), 'the global flags');
  for (const name of NODE_COMMANDS) {
    const ours = commandNamed(small, name);
    const theirs = commandNamed(whole, name);
    assert.equal(ours.options.map((option) => [option.flags, option.envVar, option.defaultValue]), theirs.options.map((option) => [option.flags, option.envVar, option.defaultValue]), `${name}'s options`);
    assert.is(helpOutput(ours), helpOutput(theirs), `${name} --help`);
  }
});

test('run as bin/hivemind.js: help, and a usage error on one line with exit code 2', () => {
  const help = spawnSync(process.execPath, [HIVEMIND, 'agent', '--help'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(help.status, 0, help.stderr);
  assert.is(help.stdout, helpOutput(commandNamed(buildProgram(), 'agent')));
  const bad = spawnSync(process.execPath, [HIVEMIND, 'join', '--no-such-flag'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(bad.status, 2);
  assert.is(bad.stderr, "hivemind: unknown option '--no-such-flag' (see `hivemind join --help`)\n");
});

test.run();
