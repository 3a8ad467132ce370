/**
 * Collects the errors and warnings of one app file while it is read, so the
 * user sees every problem at once rather than one per attempt. Pure.
 */
import { AppFileError, formatAppFileProblem } from './errors.js';

/** A field's place in the file: mapping keys and list positions, outermost first. */
export type FieldPath = readonly (string | number)[];

/** At most this many errors are kept; the rest are counted in a last error. */
export const ERRORS_MAX = 100;

/** At most this many warnings are kept (they repeat per service in big files). */
export const WARNINGS_MAX = 100;

/** `services.web.ports[0].target`: keys joined by dots, list positions in brackets. */
export function formatPath(path: FieldPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text ? `.${segment}` : segment;
  }
  return text;
}

/** Where a field is in the YAML text, when known (1-based); `file` names the file when several were merged. */
export type Locate = (path: FieldPath) => { line?: number; column?: number; file?: string } | undefined;

/** The errors and warnings of one file, in the order found. */
export class Problems {
  readonly file: string;
  private readonly locate: Locate;
  private readonly errorsKept: AppFileError[] = [];
  private readonly warningsKept: string[] = [];
  private errorsDropped = 0;
  private warningsDropped = 0;
  /** Formatted paths whose value is known to be wrong as a whole; later errors at or under them are echoes. */
  private readonly settled: string[] = [];

  constructor(file: string, locate: Locate = () => undefined) {
    this.file = file;
    this.locate = locate;
  }

  /**
   * Records that the field at `path` is wrong; `message` says how ("must be
   * ..., got ..."). `place` overrides the located line and column (YAML
   * syntax errors have a place and no path).
   */
  error(path: FieldPath, message: string, place?: { line: number; column: number }): void {
    const formatted = formatPath(path);
    if (this.settled.some((settled) => formatted === settled || formatted.startsWith(`${settled}.`) || formatted.startsWith(`${settled}[`))) return;
    if (this.errorsKept.length >= ERRORS_MAX) {
      this.errorsDropped++;
      return;
    }
    // The file as a whole has no one place worth pointing at.
    const found: { line?: number; column?: number; file?: string } | undefined = place === undefined && path.length > 0 ? this.locate(path) : place;
    const file = found?.file ?? this.file;
    const at = found?.line === undefined || found.column === undefined ? {} : { line: found.line, column: found.column };
    this.errorsKept.push(new AppFileError({ file, path: formatted, message, ...at }));
  }

  /**
   * Records an error that makes the value at `path` meaningless (a broken
   * `${VAR}`), so that the errors reading that value would cause are left out.
   */
  errorAndSettle(path: FieldPath, message: string): void {
    this.error(path, message);
    this.settled.push(formatPath(path));
  }

  /** Records something the user should know that does not stop the deploy (an ignored key). */
  warn(path: FieldPath, message: string): void {
    if (this.warningsKept.length >= WARNINGS_MAX) {
      this.warningsDropped++;
      return;
    }
    const file = path.length > 0 ? (this.locate(path)?.file ?? this.file) : this.file;
    this.warningsKept.push(formatAppFileProblem({ file, path: formatPath(path), message }));
  }

  /** How many errors were found so far (kept or not): compare before and after reading a part. */
  get errorCount(): number {
    return this.errorsKept.length + this.errorsDropped;
  }

  /**
   * The errors in the order of the file (those about the file as a whole
   * first), with a last one saying how many more were left out.
   */
  errors(): AppFileError[] {
    const sorted = [...this.errorsKept].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    if (this.errorsDropped === 0) return sorted;
    const more = new AppFileError({ file: this.file, path: '', message: `${this.errorsDropped} more errors not shown; fix the ones above first` });
    return [...sorted, more];
  }

  warnings(): string[] {
    if (this.warningsDropped === 0) return [...this.warningsKept];
    return [...this.warningsKept, `${this.file}: ${this.warningsDropped} more warnings not shown`];
  }
}
