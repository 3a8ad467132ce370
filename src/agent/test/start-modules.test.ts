// What an agent loads at start (docs/operations.md, "Footprint"): importing
// its launcher (`main.js`'s `run.ts`, every module a start imports before any
// first use) must not load what an idle node does without, each loaded on
// first need instead: the containerd runtime (executor.md), protobufjs and
// @grpc/proto-loader (the peer services' messages are encoded by hand),
// prom-client's default metrics with the OpenTelemetry API (the first
// scrape), the app-file readers (the first deploy), `recover`, the
// certificate library (a fresh start's CA), undici and the YAML parser; and
// zod, which nothing loads. And
// `hivemind agent` (bin/hivemind.js) builds the node's commands only: none
// of the client's other commands, tables or progress bars. A module hook in
// a child process lists every module loaded.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const RUN_URL = new URL('../run.js', import.meta.url).href;
const HIVEMIND = fileURLToPath(new URL('../../../../bin/hivemind.js', import.meta.url));

/** Every module and CommonJS file a fresh `node` loads importing `url`, then running `argv` as its process.argv's arguments. */
function modulesLoadedBy(url: string, argv: string[] = []): string[] {
  const folder = mkdtempSync(join(tmpdir(), 'hivemind-start-modules-'));
  const listPath = join(folder, 'modules.txt');
  try {
    const hooks = `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(listPath)}, url + '\\n'); return next(url, context); }`;
    const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    // CommonJS files a CommonJS module requires do not pass the hook: Module._load sees them.
    const script = `import { createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
const Module = createRequire(import.meta.url)('node:module');
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const loaded = load.call(this, request, parent, isMain);
  try { appendFileSync(${JSON.stringify(listPath)}, Module._resolveFilename(request, parent, isMain) + '\\n'); } catch {}
  return loaded;
};
process.argv.splice(1, process.argv.length - 1, ${JSON.stringify(fileURLToPath(url))}, ...${JSON.stringify(argv)});
await import(${JSON.stringify(url)});`;
    const child = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.is(child.status, 0, `importing ${url} failed: ${child.stderr}`);
    return readFileSync(listPath, 'utf8').split('\n').filter(Boolean).map((entry) => (entry.startsWith('file:') ? fileURLToPath(entry) : entry));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

test('starting an agent loads none of what an idle node does without', () => {
  const loaded = modulesLoadedBy(RUN_URL);
  assert.ok(loaded.some((path) => path.endsWith('/dist/src/agent/agent.js')), 'the list holds the agent itself');
  assert.ok(loaded.some((path) => path.includes('/node_modules/@grpc/grpc-js/')), 'the list holds the CommonJS packages');
  const unwanted: [string, RegExp][] = [
    ['the containerd runtime', /\/dist\/src\/executor\/containerd\/(containerd-runtime|images|registry|client|network|warm-pool)\.js$/],
    ['protobufjs', /\/node_modules\/protobufjs\//],
    ['@grpc/proto-loader', /\/node_modules\/@grpc\/proto-loader\//],
    ["prom-client's default metrics", /\/node_modules\/prom-client\/(index|lib\/defaultMetrics)\.js$/],
    ['the OpenTelemetry API', /\/node_modules\/@opentelemetry\//],
    ['the app-file readers', /\/dist\/src\/appfile\/(volumes|configs|read|compose-keys)\.js$/],
    ['recover', /\/dist\/src\/agent\/recover\.js$/],
    ['the certificate library', /\/node_modules\/@peculiar\/x509\//],
    ['undici', /\/node_modules\/undici\//],
    ['the YAML parser', /\/node_modules\/yaml\//],
    // Nothing uses it any more (src/state/schema.ts says why); every entry of it loads its 60 locales.
    ['zod', /\/node_modules\/zod\//],
  ];
  for (const [what, pattern] of unwanted) {
    const found = loaded.filter((path) => pattern.test(path));
    assert.equal(found, [], `${what} is loaded at start`);
  }
});

test('hivemind agent builds the node\'s commands only', () => {
  const loaded = modulesLoadedBy(pathToFileURL(HIVEMIND).href, ['agent', '--help']);
  assert.ok(loaded.some((path) => path.endsWith('/dist/src/cli/commands/agent.js')), 'the list holds the agent command');
  const others = loaded.filter((path) => /\/dist\/src\/cli\/(program|commands\/(?!agent\.js)[a-z-]+)\.js$|\/node_modules\/(cli-table3|cli-progress)\//.test(path));
  assert.equal(others, [], 'the client\'s other commands are loaded');
});

test.run();
