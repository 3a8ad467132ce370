/**
 * What `deploy` and `validate` gather on the machine that runs them, as
 * `docker compose` does: the app files (`-f`, several merged; without `-f`,
 * compose.yaml or docker-compose.yml and its override file in the current
 * folder), the variables for `${VAR}` (the `.env` beside the first file, or
 * `--env-file`; the shell's variables win), the local files the app files
 * name (`env_file`, `secrets.x.file`, relative to the first file's folder),
 * the files and small folders it mounts as configs (`configs.x.file`,
 * relative bind mounts; see local-sources.ts),
 * `--set`, `--profile` and the project (`-p`, `COMPOSE_PROJECT_NAME`, else
 * the file's `name:` or its folder).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { AppFileSource, LocalSource, ParseAppFileOptions } from '../../appfile/index.js';
import { parseDotenv } from '../../appfile/dotenv.js';
import { readLocalSource } from '../local-sources.js';
import { UsageError } from '../errors.js';
import { readStdin } from '../stdin.js';
import { tenantOption } from './shared.js';

/** The API refuses bodies over 4 MiB; the files of one deploy together stay under this. */
export const DEPLOY_BYTES_MAX = 4 * 1024 * 1024 - 64 * 1024;
/** One local file an app file names (an env file, a secret's file). */
const ATTACHMENT_BYTES_MAX = 1024 * 1024;

/** The files Compose looks for when no `-f` is given, in its order. */
const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

/** The options `deploy` and `validate` share. */
export interface AppFileFlags {
  file: string[];
  tenant?: string;
  projectName?: string;
  envFile: string[];
  set: string[];
  profile: string[];
}

/** Everything the parse needs: the files and its options. */
export interface AppFileInput {
  sources: AppFileSource[];
  options: ParseAppFileOptions;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Adds the options of `AppFileFlags` to `command`. */
export function addAppFileOptions(command: Command): Command {
  return command
    .addOption(new Option('-f, --file <file>', "an app file; repeat to merge several, as Compose does ('-' reads stdin; default: compose.yaml or docker-compose.yml here)").argParser(collect).default([]))
    .addOption(tenantOption("the tenant to deploy into (default: the file's x-hivemind.tenant, else default)"))
    .addOption(new Option('-p, --project-name <name>', "the project the apps belong to (default: the file's name:, else its folder)").env('COMPOSE_PROJECT_NAME'))
    .addOption(new Option('--env-file <file>', 'variables for ${VAR} in the files (repeatable; default: .env beside the first file)').argParser(collect).default([]))
    .addOption(new Option('--set <service.key=value>', 'override one key of one service, such as web.image=nginx:1.27 (repeatable)').argParser(collect).default([]))
    .addOption(new Option('--profile <name>', 'enable a Compose profile (repeatable)').argParser(collect).default([]));
}

/** Reads the app files and what they refer to; usage errors name the file that could not be read. */
export async function gatherAppFiles(flags: AppFileFlags): Promise<AppFileInput> {
  const files = flags.file.length > 0 ? flags.file : await defaultFiles();
  const sources: AppFileSource[] = [];
  let total = 0;
  for (const file of files) {
    const source = file === '-' ? { name: 'stdin', text: await readStdin({ bytesMax: DEPLOY_BYTES_MAX, what: 'the app file' }) } : { name: basename(file), text: await readText(file, DEPLOY_BYTES_MAX, 'an app file') };
    total += Buffer.byteLength(source.text);
    sources.push(source);
  }
  const first = files[0] ?? '-';
  const folder = first === '-' ? process.cwd() : dirname(resolve(first));
  const fileVariables: Record<string, string> = {};
  const envFiles = flags.envFile.length > 0 ? flags.envFile : (await exists(resolve(folder, '.env'))) ? [resolve(folder, '.env')] : [];
  for (const envFile of envFiles) {
    const parsed = parseDotenv(await readText(envFile, ATTACHMENT_BYTES_MAX, 'an env file'));
    if (!parsed.ok) throw new UsageError(`${envFile} line ${parsed.line} ${parsed.problem}`);
    Object.assign(fileVariables, parsed.variables);
  }
  const options: ParseAppFileOptions = {
    variables: usedVariables({ ...fileVariables, ...shellVariables() }, sources),
    projectFallback: basename(folder),
    sets: flags.set,
    profiles: flags.profile,
  };
  if (flags.tenant !== undefined) options.defaultTenant = flags.tenant;
  if (flags.projectName !== undefined) options.project = flags.projectName;
  // The parser (and the state's schemas under it) loads only for the commands that read app files.
  const { referencedFiles, referencedLocalSources } = await import('../../appfile/parse.js');
  const attachments: Record<string, string> = {};
  for (const path of referencedFiles(sources, options)) {
    const full = isAbsolute(path) ? path : resolve(folder, path);
    if (!(await exists(full))) continue; // The parse names the file it misses, at its place in the app file.
    const text = await readText(full, ATTACHMENT_BYTES_MAX, `a file the app file names (${path})`);
    total += Buffer.byteLength(text);
    attachments[path] = text;
  }
  const localSources: Record<string, LocalSource> = {};
  for (const path of referencedLocalSources(sources, options)) {
    const source = await readLocalSource(isAbsolute(path) ? path : resolve(folder, path));
    if (source === undefined) continue; // The parse names the mount that misses it.
    total += source.kind === 'file' ? source.data.length : source.kind === 'folder' ? source.files.reduce((sum, file) => sum + file.data.length + file.path.length, 0) : 0;
    localSources[path] = source;
  }
  if (total > DEPLOY_BYTES_MAX) throw new UsageError(`the app files and the files they name come to ${total} bytes; a deploy may carry at most ${DEPLOY_BYTES_MAX}`);
  options.files = attachments;
  options.localSources = localSources;
  return { sources, options };
}

async function defaultFiles(): Promise<string[]> {
  for (const name of DEFAULT_FILES) {
    if (!(await exists(name))) continue;
    const override = name.replace(/\.(ya?ml)$/, '.override.$1');
    return (await exists(override)) ? [name, override] : [name];
  }
  throw new UsageError(`no app file given, and none of ${DEFAULT_FILES.join(', ')} is in this folder; name one with -f`);
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readText(file: string, bytesMax: number, what: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') throw new UsageError(`cannot read ${file}: no such file`);
    if (code === 'EISDIR') throw new UsageError(`cannot read ${file}: it is a directory; give ${what}`);
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (bytes.length > bytesMax) throw new UsageError(`${file} is ${bytes.length} bytes; ${what} may have at most ${bytesMax}`);
  return bytes.toString('utf8');
}

function shellVariables(): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) variables[name] = value;
  return variables;
}

/**
 * The variables whose names occur in the files: only they are sent with a
 * deploy (the shell holds much that is none of the cluster's business).
 */
export function usedVariables(variables: Record<string, string>, sources: readonly AppFileSource[]): Record<string, string> {
  const used: Record<string, string> = {};
  for (const [name, value] of Object.entries(variables)) {
    if (sources.some((source) => new RegExp(`(^|[^A-Za-z0-9_])${name.replace(/[^A-Za-z0-9_]/g, '\\$&')}($|[^A-Za-z0-9_])`).test(source.text))) used[name] = value;
  }
  return used;
}
