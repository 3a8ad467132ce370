/**
 * The web UI as the API server serves it: the files read at the first
 * request under `/ui` (ui-files.ts), then every answer from memory
 * (ui-answer.ts).
 */
import { answerUi, type UiAnswer, type UiFiles, type UiRequest } from './ui-answer.js';
import { readUiFiles, UI_FILE_DIRECTORIES, type UiFileDirectories } from './ui-files.js';

/** Serves `/ui` on one API server. */
export class UiServer {
  private files: Promise<UiFiles> | undefined;

  constructor(private readonly directories: UiFileDirectories = UI_FILE_DIRECTORIES) {}

  /**
   * The answer to `request` (a path under `/ui`). Rejects only when the
   * files exist but cannot be read. A UI that is not built is read again at
   * the next request, so a `npm run build` after the agent started is seen.
   */
  async answer(request: UiRequest): Promise<UiAnswer> {
    const loading = (this.files ??= readUiFiles(this.directories));
    let files: UiFiles;
    try {
      files = await loading;
    } catch (error) {
      if (this.files === loading) this.files = undefined;
      throw error;
    }
    if (files.size === 0 && this.files === loading) this.files = undefined;
    return answerUi(files, request);
  }
}
