/**
 * The problems an app file can have, as values: each names the file, the
 * path of the field in Compose's terms (`services.web.deploy.replicas`) and
 * what is wrong with it. Pure: no Node API.
 */

/** The code the API answers with when an app file has errors (`400 invalid-app-file`). */
export const APP_FILE_ERROR_CODE = 'invalid-app-file';

/** The plain shape of a problem, as it travels in JSON (`{ file, path, message }`). */
export interface AppFileProblem {
  file: string;
  /** The field's path (`services.web.ports[0]`), or `''` for the file as a whole. */
  path: string;
  message: string;
}

/**
 * One error in an app file. `line` and `column` (1-based) point at the
 * field in the YAML text when it could be found there; they are extra help
 * for editors, never part of the formatted message.
 */
export class AppFileError implements AppFileProblem {
  readonly file: string;
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;

  constructor(init: AppFileProblem & { line?: number; column?: number }) {
    this.file = init.file;
    this.path = init.path;
    this.message = init.message;
    if (init.line !== undefined) this.line = init.line;
    if (init.column !== undefined) this.column = init.column;
  }

  /** `app.yaml: services.web.deploy.replicas: must be a whole number >= 0, got "three"`. */
  toString(): string {
    return formatAppFileProblem(this);
  }

  toJSON(): AppFileProblem & { line?: number; column?: number } {
    const json: AppFileProblem & { line?: number; column?: number } = { file: this.file, path: this.path, message: this.message };
    if (this.line !== undefined) json.line = this.line;
    if (this.column !== undefined) json.column = this.column;
    return json;
  }
}

/** Formats a problem (also one that came back through JSON) as `file: path: message`, or `file: message` without a path. */
export function formatAppFileProblem(problem: AppFileProblem): string {
  return problem.path ? `${problem.file}: ${problem.path}: ${problem.message}` : `${problem.file}: ${problem.message}`;
}
