/**
 * Limits of app files that code outside the parser needs (the API's deploy
 * route), apart from parse.ts so that importing them does not load the YAML
 * parser: the agent reads app files on a worker thread (src/api/app-file-worker.ts).
 */

/** The most app files merged in one deploy. */
export const APP_FILES_MAX = 16;
