/**
 * Keeps secrets typed on the command line out of the process list. Every
 * user of the host (a tenant's app included) reads `/proc/<pid>/cmdline`;
 * Node writes `process.title` over the original argv, so after
 * `hideSecretFlags` that file shows `--token ***` instead of the token for
 * as long as the agent runs.
 */

/** Flags whose value is a secret. */
export const SECRET_FLAGS: readonly string[] = ['--token'];

/** `argv` with the value of each secret flag (`--token V` or `--token=V`) replaced by `***`. */
export function redactArgv(argv: readonly string[], flags: readonly string[] = SECRET_FLAGS): string[] {
  const redacted: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    const withValue = flags.find((flag) => argument.startsWith(`${flag}=`));
    if (withValue !== undefined) {
      redacted.push(`${withValue}=***`);
    } else if (flags.includes(argument) && index + 1 < argv.length) {
      redacted.push(argument, '***');
      index++;
    } else {
      redacted.push(argument);
    }
  }
  return redacted;
}

/** Rewrites this process's command line when it holds a secret flag's value; says whether it did. */
export function hideSecretFlags(argv: readonly string[] = process.argv): boolean {
  const redacted = redactArgv(argv);
  if (redacted.every((argument, index) => argument === argv[index])) return false;
  process.title = redacted.join(' ');
  return true;
}
