/**
 * Hears that a file may have changed, without reading it on a timer: an
 * idle node then does not wake to find the same content again. Watches the
 * file's directory, not the file (a file replaced by rename, as
 * `writeNodeNetwork` writes, is a new inode a watch on the old one misses),
 * and, while that directory does not exist, its parent for the directory's
 * creation.
 *
 * Hearing is best effort (inotify on Linux): events are coalesced and may be
 * spurious, and a watch can fail (the directory removed, the host's watch
 * limit reached). So `onChange` only says "look again", and the caller keeps
 * a slow look of its own as a safety net; `watching` says whether a watch is
 * in place, and the caller should look often while it is not.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** What a `FileWatch` calls. */
export interface FileWatchOptions {
  /** The file to follow (it need not exist yet). */
  path: string;
  /** The file, or its directory, may have changed: read it again. Must not throw. */
  onChange: () => void;
}

/** See the file comment. Watches from construction until `close()`. */
export class FileWatch {
  readonly #directory: string;
  readonly #options: FileWatchOptions;
  #watcher: FSWatcher | undefined;
  /** The watch on the parent while the directory does not exist. */
  #parentWatcher: FSWatcher | undefined;
  #closed = false;

  constructor(options: FileWatchOptions) {
    this.#options = options;
    this.#directory = dirname(options.path);
    this.#arm();
  }

  /** Whether a watch is in place (on the directory, or on its parent until it exists). */
  get watching(): boolean {
    return this.#watcher !== undefined || this.#parentWatcher !== undefined;
  }

  /** Idempotent. */
  close(): void {
    this.#closed = true;
    this.#closeWatchers();
  }

  #closeWatchers(): void {
    this.#watcher?.close();
    this.#parentWatcher?.close();
    this.#watcher = undefined;
    this.#parentWatcher = undefined;
  }

  /** Watches the directory, or its parent while it does not exist; with neither, `watching` is false. */
  #arm(): void {
    if (this.#closed) return;
    this.#closeWatchers();
    this.#watcher = this.#tryWatch(this.#directory, (name) => {
      // The directory itself removed or renamed (Linux names it in the event): watch again, the parent until it comes back.
      if (name === basename(this.#directory)) this.#arm();
      if (name === null || name === basename(this.#options.path) || name === basename(this.#directory)) this.#options.onChange();
    }, () => this.#arm());
    if (this.#watcher !== undefined) return;
    const wanted = basename(this.#directory);
    this.#parentWatcher = this.#tryWatch(dirname(this.#directory), (name) => {
      if (name !== wanted && name !== null) return;
      this.#arm();
      this.#options.onChange();
    }, () => this.#closeWatchers());
  }

  /** A watch on `directory`, or undefined when one cannot be set (it does not exist, the watch limit). */
  #tryWatch(directory: string, onEvent: (name: string | null) => void, onFail: () => void): FSWatcher | undefined {
    let watcher: FSWatcher;
    try {
      watcher = watch(directory, { persistent: false }, (_type, name) => onEvent(name === null ? null : String(name)));
    } catch {
      return undefined;
    }
    watcher.on('error', () => {
      watcher.close();
      if (this.#closed) return;
      onFail();
      this.#options.onChange();
    });
    return watcher;
  }
}
