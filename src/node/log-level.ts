/** The agent log's levels (src/agent/agent-log.ts), least severe first: a log at a level writes that level and those after it. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** One of `LOG_LEVELS`. */
export type LogLevel = (typeof LOG_LEVELS)[number];
