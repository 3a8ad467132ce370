/**
 * Reading the UI's files: the browser code `tsc -b` compiled
 * (dist/src/ui/browser/*.js) and the hand-written page, styles and icon
 * (src/ui/static/), read once, when the UI is first asked for, and kept in
 * memory (about 100 KiB). Only the kinds of file the UI serves are read;
 * declarations, build info and anything else stay on disk.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert } from '../../consensus/core/assert.js';
import type { UiFile, UiFiles } from './ui-answer.js';

/** The content type of each kind of file served, by extension. */
export const UI_CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Where the files are: the compiled browser code and the static folder. */
export interface UiFileDirectories {
  compiled: string;
  static: string;
}

/** The folders of this installation (beside this module in dist/, and the source tree's src/ui/static). */
export const UI_FILE_DIRECTORIES: UiFileDirectories = {
  compiled: fileURLToPath(new URL('./browser/', import.meta.url)),
  static: fileURLToPath(new URL('../../../src/ui/static/', import.meta.url)),
};

/** Where index.html lists the modules to fetch at once (the browser would otherwise find them import by import). */
const MODULE_PRELOAD_MARK = '<!-- modulepreload -->';

/**
 * Reads the UI's files from `directories`. Resolves with no files when the
 * browser code was not compiled (the server then says so); rejects on any
 * other read error.
 */
export async function readUiFiles(directories: UiFileDirectories = UI_FILE_DIRECTORIES): Promise<UiFiles> {
  const compiled = await filesIn(directories.compiled, (name) => name.endsWith('.js'));
  if (!compiled.has('main.js')) return new Map();
  const statics = await filesIn(directories.static, () => true);
  const files = new Map<string, UiFile>();
  for (const [name, body] of [...compiled, ...statics]) {
    assert(!files.has(name), () => `the UI has two files named ${name} (compiled and static)`);
    files.set(name, uiFile(name, name === 'index.html' ? withModulePreloads(body, [...compiled.keys()]) : body));
  }
  assert(files.has('index.html'), () => `the UI's index.html is missing from ${directories.static}`);
  return files;
}

/** `index.html` with a modulepreload link for each module in place of its mark. */
export function withModulePreloads(page: Uint8Array, modules: readonly string[]): Uint8Array {
  const text = Buffer.from(page).toString('utf8');
  const links = [...modules].sort().map((name) => `<link rel="modulepreload" href="${name}">`).join('\n');
  return Buffer.from(text.replace(MODULE_PRELOAD_MARK, links), 'utf8');
}

/** A file ready to send: its type from its extension, its ETag from its content. */
export function uiFile(name: string, body: Uint8Array): UiFile {
  const contentType = UI_CONTENT_TYPES[extname(name)];
  assert(contentType !== undefined, () => `the UI does not serve files like ${name}`);
  const digest = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, contentType, etag: `"${digest}"` };
}

async function filesIn(directory: string, wanted: (name: string) => boolean): Promise<Map<string, Uint8Array>> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  const found = new Map<string, Uint8Array>();
  for (const name of names.sort()) {
    if (!wanted(name) || UI_CONTENT_TYPES[extname(name)] === undefined) continue;
    found.set(name, await readFile(join(directory, name)));
  }
  return found;
}
