/**
 * The CLI as a user meets it, without a node: help on every command, usage
 * errors (one line, exit 2), completion scripts, the message when no node is
 * reachable (exit 1), and no stack trace anywhere.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Command } from 'commander';
import { buildProgram } from '../program.js';
import { BIN, closedPort, hasStackTrace, runCli, type CliResult } from './run-cli.js';

/** Every command path of the tree: `[]`, `['tenants']`, `['tenants', 'create']`, ... */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return [prefix, ...command.commands.flatMap((child) => commandPaths(child, [...prefix, child.name()]))];
}

/** The command at `path` under `root`. */
function commandAt(root: Command, path: readonly string[]): Command {
  let command = root;
  for (const name of path) {
    const child = command.commands.find((candidate) => candidate.name() === name);
    assert.ok(child !== undefined, `no command ${name} under ${command.name()}`);
    command = child;
  }
  return command;
}

const scratch = mkdtempSync(join(tmpdir(), 'hivemind-cli-test-'));
/** A data directory with no token in it, so no test reads a real ./.hivemind. */
const emptyDataDir = join(scratch, 'data');
const env = { HIVEMIND_DATA_DIR: emptyDataDir };

test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('--help works on every command: its usage and the global flags; a real run exits 0 with the help alone on stdout', async () => {
  const program = buildProgram();
  const paths = commandPaths(program);
  assert.ok(paths.length > 30, `expected the whole tree, got ${paths.length} commands`);
  // Every command's help, from the same tree the CLI builds (77 processes took about 20 s of the suite).
  for (const path of paths) {
    const name = ['hivemind', ...path].join(' ');
    const help = commandAt(program, path).helpInformation();
    assert.ok(help.startsWith(`Usage: ${name}`), `${name} --help: ${help.slice(0, 80)}`);
    if (path.length > 0) assert.match(help, /--addr <address>/, `${name} --help lists the global flags`);
  }
  // The process side, for the root, a group and a leaf: exit 0, the help on stdout, nothing on stderr.
  for (const path of [[], ['kv'], ['kv', 'get']]) {
    const name = ['hivemind', ...path].join(' ');
    const result = await runCli([...path, '--help'], { env });
    assert.is(result.status, 0, `${name} --help exited ${result.status}: ${result.stderr}`);
    assert.ok(result.stdout.startsWith(`Usage: ${name}`), `${name} --help: ${result.stdout.slice(0, 80)}`);
    assert.match(result.stdout, /--addr <address>/, `${name} --help lists the global flags`);
    assert.is(result.stderr, '', `${name} --help wrote to stderr`);
  }
});

test('--version prints the package version', async () => {
  const result = await runCli(['--version'], { env });
  assert.is(result.status, 0);
  assert.match(result.stdout, /^\d+\.\d+\.\d+/);
});

const usageCases: [string[], RegExp][] = [
  [['bogus'], /^hivemind: unknown command 'bogus'/],
  [['stauts'], /Did you mean status\?/],
  [['app'], /^hivemind: missing required argument 'name' \(see `hivemind app --help`\)$/],
  [['scale', 'web', 'three'], /^hivemind: .*'three' is invalid.*whole number/],
  [['tenants', 'create', 'acme', '--memory', 'lots'], /^hivemind: .*--memory.*'lots' is invalid.*size/],
  [['tenants', 'update', 'acme'], /^hivemind: give at least one limit/],
  [['tenants', 'update', 'acme', '--host-mounts', 'yes'], /^hivemind: .*--host-mounts.*'yes' is invalid.*allow or deny/],
  [['app', 'Bad_Name'], /^hivemind: app "Bad_Name" is not a valid name/],
  [['app', 'acme/web', '--tenant', 'other'], /names tenant "acme" but --tenant is "other"/],
  [['deploy'], /^hivemind: no app file given, and none of compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml is in this folder; name one with -f$/],
  [['validate', '-f', '/nonexistent/app.yaml'], /^hivemind: cannot read \/nonexistent\/app.yaml: no such file$/],
  [['validate', '-f', '/nonexistent/app.yaml', '--env-file'], /^hivemind: option '--env-file <file>' argument missing/],
  [['deploy', '-f', '/nonexistent/app.yaml'], /^hivemind: cannot read \/nonexistent\/app.yaml: no such file$/],
  [['deploy', '-f', 'x.yaml', '--wait', '--detach'], /cannot be used with option '--wait'/],
  [['status', '--addr', 'ftp://example'], /^hivemind: --addr: "ftp:\/\/example" must be http:\/\/ or https:\/\//],
  [['volumes', 'create', 'data'], /required option '--size <size>' not specified/],
  [['kv', 'put', 'k', 'v', '--cas', '-1'], /^hivemind: /],
  [['completion', 'powershell'], /'powershell' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish/],
  [['status', 'extra'], /too many arguments/],
  [['recover'], /--force-new-cluster/],
];

test('usage errors are one line on stderr and exit 2', async () => {
  const results = await Promise.all(usageCases.map(async ([args, pattern]) => ({ args, pattern, result: await runCli(args, { env }) })));
  for (const { args, pattern, result } of results) {
    const name = args.join(' ');
    assert.is(result.status, 2, `hivemind ${name} exited ${result.status}: ${result.stderr}`);
    assert.is(result.stdout, '', `hivemind ${name} wrote to stdout`);
    const lines = result.stderr.trimEnd().split('\n');
    assert.is(lines.length, 1, `hivemind ${name}: ${result.stderr}`);
    assert.match(result.stderr.trimEnd(), pattern, `hivemind ${name}: ${result.stderr}`);
  }
});

test('validate reads files offline as deploy does: merged files, .env, env_file, --set, --profile; errors exit 1 with every one', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'hivemind-validate-'));
  try {
    writeFileSync(join(folder, 'compose.yaml'), 'name: shop\nservices:\n  web:\n    image: "nginx:${TAG:-1.25}"\n    env_file: web.env\n    ports: ["8080:80"]\n  debug:\n    image: busybox\n    profiles: [debug]\n');
    writeFileSync(join(folder, 'compose.override.yaml'), 'services:\n  web:\n    deploy: { replicas: 2 }\n');
    writeFileSync(join(folder, '.env'), 'TAG=1.27\n');
    writeFileSync(join(folder, 'web.env'), 'MODE=prod\n');
    const good = await runCli(['validate', '--json'], { env, cwd: folder });
    assert.is(good.status, 0, good.stderr);
    const result = JSON.parse(good.stdout) as { ok: boolean; project: string; apps: { name: string; image: string; replicas: number; environment: Record<string, string> }[] };
    assert.equal([result.project, result.apps.map((app) => [app.name, app.image, app.replicas, app.environment])], ['shop', [['web', 'nginx:1.27', 2, { MODE: 'prod' }]]]);
    assert.match(good.stderr, /^warning: compose.yaml: services.debug: is left out: its profiles \(debug\) are not enabled/m);
    const table = await runCli(['validate', '-f', 'compose.yaml', '--profile', 'debug', '--set', 'web.image=nginx:1.28'], { env, cwd: folder });
    assert.is(table.status, 0, table.stderr);
    assert.match(table.stdout, /^project shop$/m);
    assert.match(table.stdout, /^web\s+default\s+nginx:1.28\s+1\s+8080:80\/tcp$/m);
    assert.match(table.stdout, /^compose.yaml is valid: 2 apps$/m);
    const bad = await runCli(['validate', '-f', 'compose.yaml', '--set', 'web.deploy.replicas=three', '--set', 'web.ports=[x]'], { env, cwd: folder });
    assert.is(bad.status, 1);
    assert.is(bad.stderr.split('\n').filter((line) => !line.startsWith('warning: ')).join('\n'), [
      'hivemind: compose.yaml: 2 errors; a deploy would deploy nothing',
      '--set: services.web.ports[0]: must be a port like "8080:80", "80" or "8080:80/udp", with ports from 1 to 65535, got "x"',
      '--set: services.web.deploy.replicas: must be a whole number >= 0, got "three"',
      '',
    ].join('\n'));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test('a command group without a subcommand shows its help and exits 2 (kv), or lists (tenants)', async () => {
  const kv = await runCli(['kv'], { env });
  assert.is(kv.status, 2);
  assert.match(kv.stderr, /Usage: hivemind kv/);
});

test('no node at the address: one line naming the address and what to do, exit 1', async () => {
  const port = await closedPort();
  for (const args of [['status'], ['tenants'], ['apps', '--json'], ['kv', 'get', 'a/b'], ['history', '--watch']]) {
    const result = await runCli(['--addr', `127.0.0.1:${port}`, ...args], { env });
    assert.is(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.is(result.stdout, '');
    assert.is(
      result.stderr,
      `hivemind: cannot reach the node at https://127.0.0.1:${port} (connection refused); is \`hivemind agent\` running? (set --addr or HIVEMIND_ADDR)\n`,
    );
  }
  const viaEnv = await runCli(['nodes'], { env: { ...env, HIVEMIND_ADDR: `http://127.0.0.1:${port}` } });
  assert.is(viaEnv.status, 1);
  assert.match(viaEnv.stderr, new RegExp(`node at http://127\\.0\\.0\\.1:${port} \\(connection refused\\)`));
  assert.not.ok(hasStackTrace(viaEnv.stderr));
});

test('the default address is the local node on 7070', async () => {
  const result = await runCli(['status'], { env });
  // Nothing may listen on 7070 where the tests run; if something does, the request fails differently.
  if (result.status === 1 && /connection refused/.test(result.stderr)) {
    assert.match(result.stderr, /node at https:\/\/127\.0\.0\.1:7070 /);
  }
  assert.not.ok(hasStackTrace(result.stderr));
});

test('completion: bash completes commands, subcommands and flags from the tree', async () => {
  const script = await runCli(['completion', 'bash'], { env });
  assert.is(script.status, 0);
  const file = join(scratch, 'hivemind.bash');
  writeFileSync(file, script.stdout);
  const syntax = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
  assert.is(syntax.status, 0, syntax.stderr);
  const complete = (line: string): string[] => {
    const words = line.split(' ');
    const program = [
      `source ${file}`,
      `COMP_WORDS=(${words.map((word) => `'${word}'`).join(' ')})`,
      `COMP_CWORD=${words.length - 1}`,
      '_hivemind',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const run = spawnSync('bash', ['-c', program], { encoding: 'utf8' });
    assert.is(run.status, 0, run.stderr);
    return run.stdout.split('\n').filter((word) => word !== '');
  };
  assert.equal(complete('hivemind ten'), ['tenants']);
  assert.ok(complete('hivemind ').includes('deploy'));
  assert.equal(complete('hivemind tenants cr'), ['create']);
  assert.ok(complete('hivemind tenants create acme --').includes('--memory'));
  assert.ok(complete('hivemind deploy --').includes('--wait'));
  assert.ok(complete('hivemind --addr 10.0.0.1:7070 kv ').includes('put'));
  assert.equal(complete('hivemind deploy -f '), [], 'after -f the shell completes file names');
});

test('completion: zsh and fish scripts name every command; syntax checked where the shell is installed', async () => {
  const paths = commandPaths(buildProgram()).filter((path) => path.length > 0);
  for (const shell of ['zsh', 'fish']) {
    const script = await runCli(['completion', shell], { env });
    assert.is(script.status, 0);
    for (const path of paths) assert.ok(script.stdout.includes(`hivemind ${path.join(' ')}`), `${shell} script lacks ${path.join(' ')}`);
    const file = join(scratch, `hivemind.${shell}`);
    writeFileSync(file, script.stdout);
    const check = spawnSync(shell, ['-n', file], { encoding: 'utf8' });
    if (check.error === undefined) assert.is(check.status, 0, `${shell} -n: ${check.stderr}`);
  }
  const zsh = await runCli(['completion', 'zsh'], { env });
  assert.match(zsh.stdout, /^#compdef hivemind/);
  const fish = await runCli(['completion', 'fish'], { env });
  assert.match(fish.stdout, /^complete -c hivemind -n '__hivemind_at "hivemind deploy"' -l file -s f -r -F /m);
});

test('bin/hivemind.js says how to build when dist is missing', () => {
  const copy = join(scratch, 'unbuilt');
  mkdirSync(join(copy, 'bin'), { recursive: true });
  copyFileSync(BIN, join(copy, 'bin', 'hivemind.js'));
  writeFileSync(join(copy, 'package.json'), '{"type":"module"}');
  const run = spawnSync(process.execPath, [join(copy, 'bin', 'hivemind.js'), 'status'], { encoding: 'utf8' });
  assert.is(run.status, 1);
  assert.is(run.stderr, 'hivemind is not built: run `npm run build` first\n');
});

test('secrets set refuses an over-long value before sending anything', async () => {
  const port = await closedPort();
  const result = await runCli(['--addr', `127.0.0.1:${port}`, 'secrets', 'set', 'big'], { env, input: 'x'.repeat(70 * 1024) });
  assert.is(result.status, 2);
  assert.match(result.stderr, /^hivemind: the value of secret default\/big on stdin is more than 65536 bytes\n$/);
});

test.run();
