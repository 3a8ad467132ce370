#!/usr/bin/env node
/**
 * A launcher for the agent alone, for tests and development until (and
 * beside) the CLI: `node dist/src/agent/main.js agent|join <seed>|recover
 * --force-new-cluster [flags]`, with the flags and environment variables of
 * `hivemind agent` (src/agent/config.ts).
 */
import { runAgentCommand } from './run.js';

process.exitCode = await runAgentCommand(process.argv.slice(2), process.env);
