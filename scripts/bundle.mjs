#!/usr/bin/env node
// A footprint experiment of issue 15, not part of `npm run build` (esbuild is
// not a dependency): bundles the compiled CLI (dist/src/cli/main.js, what
// bin/hivemind.js runs) and the agent's launcher (dist/src/agent/main.js)
// with esbuild into dist/bundle/: one file per entry and shared chunks for
// what either imports on first use (each dynamic import() stays a chunk
// loaded when it runs, so an idle node loads no more than the unbundled build
// does). Minified (whitespace and syntax; names kept, so a stack trace reads;
// `--minify-identifiers` renames them too), with source maps back to src/*.ts
// through tsc's own maps (`node --enable-source-maps` reads them).
//
//   npx tsc -b && ESBUILD=/path/to/esbuild node scripts/bundle.mjs [--outdir dist/bundle] [--minify-identifiers]
//   node dist/bench/footprint.js --single --settle-seconds 40 --entry dist/bundle/agent.js
//
// ESBUILD names the package (a folder holding esbuild's package.json, e.g.
// from `npm install --prefix /tmp/esbuild esbuild@0.28`); without it the
// script imports `esbuild` as a package. What it measured (about 5.5 MiB less
// idle RSS, about 40 % less CPU until a restart serves) and why it is not in
// the build: docs/operations.md, "Footprint".
//
// What stays outside the bundle:
// - packages with native addons, or that find files beside themselves at run
//   time (classic-level, msgpackr-extract, hyperswarm and its native parts);
// - undici (loaded on first use): bundled, a follower's writes forwarded to
//   the leader through it never got an answer (src/agent/test/cluster.test.ts
//   failed 5 of 8 with it inside, passed with it outside);
// - the OpenTelemetry packages (loaded with --otlp-endpoint or the first
//   scrape): bundled, the agent could not start with --otlp-endpoint
//   ("OTLPTraceExporter is not a constructor", tracing.test.ts);
// - @peculiar/x509 with reflect-metadata (the certificate library, loaded on a
//   fresh start only): it keeps its own module instance, whose crypto
//   provider the certificate code sets;
// - the files started as their own thread or process by URL (the app-file
//   worker, the proxy's workers): they are found beside the module that
//   starts them, below. The bundle therefore runs beside dist/, not instead
//   of it.
//
// Each bundled module's `import.meta.url` is its own file's URL under dist/,
// so what it finds relative to itself (proto/, package.json, the UI's files,
// the workers' entry points) is where it was.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
const { values: options } = parseArgs({ options: { outdir: { type: 'string', default: 'dist/bundle' }, 'minify-identifiers': { type: 'boolean', default: false } } });
const outdir = resolve(root, options.outdir);

let esbuild;
try {
  esbuild = process.env.ESBUILD ? createRequire(import.meta.url)(resolve(process.env.ESBUILD)) : await import('esbuild');
} catch (error) {
  process.stderr.write(`bundle: cannot load esbuild (${error.message}): install it outside the project (npm install --prefix /tmp/esbuild esbuild@0.28) and set ESBUILD=/tmp/esbuild/node_modules/esbuild\n`);
  process.exit(1);
}

/** Each module's own import.meta.url: the URL of its file under dist/, relative to the bundle's file. */
const ownImportMetaUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\/dist\/.*\.js$/ }, async (args) => {
      const contents = await readFile(args.path, 'utf8');
      if (!contents.includes('import.meta.url')) return undefined;
      const own = relative(outdir, args.path);
      return {
        contents: contents.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`),
        loader: 'js',
        resolveDir: dirname(args.path),
      };
    });
  },
};

const result = await esbuild.build({
  entryPoints: { cli: `${dist}/src/cli/main.js`, agent: `${dist}/src/agent/main.js` },
  outdir,
  bundle: true,
  splitting: true,
  chunkNames: 'chunk-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'bundle',
  external: ['undici', '@opentelemetry/*', 'classic-level', 'msgpackr-extract', 'udx-native', 'sodium-native', 'hyperswarm', 'hyperdht', '@peculiar/x509', 'reflect-metadata', 'bufferutil', 'utf-8-validate'],
  // CommonJS packages inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  plugins: [ownImportMetaUrl],
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: options['minify-identifiers'],
  legalComments: 'none',
  sourcemap: 'linked',
  sourcesContent: false,
  metafile: true,
  logLevel: 'warning',
});
let bytes = 0;
let files = 0;
for (const [name, output] of Object.entries(result.metafile.outputs)) {
  if (name.endsWith('.map')) continue;
  files++;
  bytes += output.bytes;
}
console.log(`bundle: ${files} files, ${(bytes / 2 ** 20).toFixed(2)} MiB in ${relative(root, outdir)}/ from ${Object.keys(result.metafile.inputs).length} modules`);
