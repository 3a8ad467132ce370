// The node agent: configuration, start (bootstrap, restart, join), and offline recovery.
export { startAgent } from './agent.js';
export type { Agent, AgentStopReason, StartAgentOptions, StartMode } from './agent.js';
export { AgentError } from './agent-error.js';
export type { AgentErrorCode } from './agent-error.js';
export { resolveConfig, currentSystem, formatConfigProblems, parseDurationMs, SETTINGS, DEFAULT_PORTS } from '../node/config.js';
export type { AgentConfig, AgentFlags, AgentSystem, ConfigProblem, ResolvedConfig } from '../node/config.js';
export { DataDirError, readLocalToken } from '../node/data-dir.js';
export { recover } from './recover.js';
export type { RecoverOptions, RecoverOutcome } from './recover.js';
export { runAgent, runAgentCommand, describeStartError, EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './run.js';
