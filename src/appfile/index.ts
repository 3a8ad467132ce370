// The app file: Compose-style YAML in, normalized AppSpecs (or every error) out. Pure.
export { parseAppFile, parseAppFiles, referencedFiles, referencedLocalSources, isRelativeHostPath, projectName, APP_FILE_BYTES_MAX, APP_FILES_MAX, SERVICES_MAX } from './parse.js';
export type { AppFileSource, FileSecret, ParseAppFileOptions, ParseAppFileResult } from './parse.js';
export { parseDotenv } from './dotenv.js';
export { planDeploy, composeFieldOf, type DeployPlan, type PlannedApp } from './plan.js';
export { AppFileError, formatAppFileProblem, APP_FILE_ERROR_CODE } from './errors.js';
export type { AppFileProblem } from './errors.js';
export { ERRORS_MAX } from './problems.js';
export { parseDurationMs, parseMemoryBytes, parseCpuMillis } from './units.js';
export { volumeCreations, VOLUME_SIZE_BYTES_DEFAULT } from './volumes.js';
export type { DeclaredVolume } from './volumes.js';
export { configLimits, type LocalSource } from './configs.js';
