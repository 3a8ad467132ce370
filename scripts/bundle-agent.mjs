#!/usr/bin/env node
// An experiment of issue 15 (footprint), not part of `npm run build` yet: bundles the
// compiled agent launcher (dist/src/agent/main.js) and the CLI (dist/src/cli/main.js)
// with esbuild into dist/bundle/, one file each plus shared chunks for what they import
// dynamically, minified (whitespace and syntax; names kept, so stack traces still read).
// Start-up then reads and links a few files instead of about 250 of ours and 100 of
// zod's, and V8 holds less source text (our sources keep their comments).
//
// Needs esbuild 0.24 (not a dependency of the project: `npm install --no-save
// esbuild@0.24`, or point ESBUILD at a copy). Try it with
//   node scripts/bundle-agent.mjs && node dist/bench/footprint.js --single --entry dist/bundle/agent.js
//
// What stays outside the bundle, and why:
// - native addons and packages that find files beside themselves at run time
//   (classic-level, msgpackr-extract, hyperswarm and its native parts), and
//   @peculiar/x509 with reflect-metadata (bundled, its namespace lost the
//   `cryptoProvider` the certificate code sets);
// - each bundled module's `import.meta.url` is rewritten to its own file's URL
//   under dist/ (relative to the bundle), so what it finds by it (proto/,
//   package.json, the UI's files, worker entry points) is found as before: the
//   bundle runs beside dist/, not instead of it.
import { readFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;
const esbuildPath = process.env.ESBUILD ?? 'esbuild';
let esbuild;
try {
  esbuild = await import(esbuildPath.startsWith('/') ? pathToFileURL(esbuildPath).href : esbuildPath);
} catch {
  process.stderr.write(`bundle-agent: cannot load esbuild (${esbuildPath}): install esbuild@0.24, or set ESBUILD to its lib/main.js\n`);
  process.exit(1);
}

/** Keeps each bundled module's own `import.meta.url`, as a URL relative to the bundle. */
const keepImportMetaUrl = {
  name: 'keep-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\/dist\/.*\.js$/ }, async (args) => {
      let contents = await readFile(args.path, 'utf8');
      if (contents.includes('import.meta.url')) {
        const own = relative(outdir, args.path);
        contents = contents.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`);
      }
      return { contents, loader: 'js' };
    });
  },
};

const result = await esbuild.build({
  entryPoints: { agent: `${root}dist/src/agent/main.js`, cli: `${root}dist/src/cli/main.js` },
  outdir,
  bundle: true,
  splitting: true,
  chunkNames: 'chunk-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['classic-level', 'msgpackr-extract', 'udx-native', 'sodium-native', 'hyperswarm', 'hyperdht', '@peculiar/x509', 'reflect-metadata', 'bufferutil', 'utf-8-validate'],
  // CommonJS packages inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  plugins: [keepImportMetaUrl],
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
let bytes = 0;
for (const output of Object.values(result.metafile.outputs)) bytes += output.bytes;
console.log(`bundle-agent: ${Object.keys(result.metafile.outputs).length} files, ${(bytes / 2 ** 20).toFixed(2)} MiB in ${relative(root, outdir)}/ from ${Object.keys(result.metafile.inputs).length} modules`);
