#!/usr/bin/env node
// The `hivemind` command. The CLI itself is TypeScript, compiled to dist/ by
// `npm run build`; this file only finds it, and says so in one line if the
// build is missing.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('hivemind is not built: run `npm run build` first\n');
  process.exit(1);
}
await import(entry.href);
