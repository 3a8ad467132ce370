/**
 * Outlier ejection for one backend: an instance that answers, but with 5xx,
 * `failuresMax` times in a row is left out of the balance for a while; each
 * further ejection lasts longer (ejectionMs times the number of ejections,
 * at most `EJECTIONS_FACTOR_MAX` times). The app's caller decides whether an
 * ejection may happen at all (never more than half of its backends out).
 * Pure: the caller passes the time.
 */
/** Ejection lengths stop growing at this multiple of `ejectionMs`. */
export const EJECTIONS_FACTOR_MAX = 10;

export interface OutlierOptions {
  readonly failuresMax: number;
  readonly ejectionMs: number;
}

export class OutlierDetector {
  private errorsInRow = 0;
  private ejections = 0;
  private ejectedUntilMs = -Infinity;

  constructor(private options: OutlierOptions) {}

  configure(options: OutlierOptions): void {
    this.options = options;
  }

  isEjected(nowMs: number): boolean {
    return nowMs < this.ejectedUntilMs;
  }

  /**
   * Records a response status. Returns true when it ejected the backend;
   * `mayEject` false (too many of the app's backends are out) only counts.
   */
  recordStatus(status: number, nowMs: number, mayEject: boolean): boolean {
    if (status < 500) {
      this.errorsInRow = 0;
      // A backend that serves well again for a while earns its ejection count back.
      if (this.ejections > 0 && nowMs >= this.ejectedUntilMs + this.options.ejectionMs) this.ejections = 0;
      return false;
    }
    this.errorsInRow++;
    if (this.errorsInRow < this.options.failuresMax || !mayEject || this.isEjected(nowMs)) return false;
    this.ejections = Math.min(this.ejections + 1, EJECTIONS_FACTOR_MAX);
    this.ejectedUntilMs = nowMs + this.options.ejectionMs * this.ejections;
    this.errorsInRow = 0;
    return true;
  }
}
