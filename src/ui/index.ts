// The web UI served at /ui on the API port (docs/internals/ui.md); the browser code is in browser/.
export { UiServer } from './ui-server.js';
export { UI_PATH, isUiPath, answerUi, etagMatches, UI_CONTENT_SECURITY_POLICY } from './ui-answer.js';
export type { UiAnswer, UiFile, UiFiles, UiRequest } from './ui-answer.js';
export { readUiFiles, uiFile, withModulePreloads, UI_CONTENT_TYPES, UI_FILE_DIRECTORIES } from './ui-files.js';
export type { UiFileDirectories } from './ui-files.js';
