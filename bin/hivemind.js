#!/usr/bin/env -S node --max-semi-space-size=2
// The `hivemind` command. The CLI itself is TypeScript, compiled to dist/ by
// `npm run build`; this file only finds it, and says so in one line if the
// build is missing.
//
// --max-semi-space-size=2 (MiB, on the first line: V8 sizes its heap before
// any script runs, so it cannot be set from here): V8 otherwise lets each
// semi-space of the young generation grow to 16 MiB, and an idle agent's
// settles at 16 (32 MiB of new space, mostly garbage between scavenges).
// Capped at 2 MiB the idle agent holds about 20 MiB less RSS at the same CPU;
// a busy agent scavenges more often (each scavenge is shorter). See
// docs/operations.md, "Footprint". bench/footprint.ts starts agents with the
// flags of this line.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('hivemind is not built: run `npm run build` first\n');
  process.exit(1);
}
await import(entry.href);
