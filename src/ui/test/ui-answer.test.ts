// What /ui answers, from the UI's real files (read from this build's dist
// and src/ui/static) and from a made-up set: content types, ETags and 304s,
// the redirect to /ui/, methods, and no way to any file outside the set.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { answerUi, etagMatches, isUiPath, readUiFiles, uiFile, UI_CONTENT_SECURITY_POLICY, UiServer, withModulePreloads, type UiFiles, type UiRequest } from '../index.js';

function get(pathname: string, ifNoneMatch?: string): UiRequest {
  return { method: 'GET', pathname, ifNoneMatch };
}

const text = (body: Uint8Array): string => Buffer.from(body).toString('utf8');

test('the real files: the page, its modules and styles with their types, and nothing else', async () => {
  const files = await readUiFiles();
  for (const name of ['index.html', 'main.js', 'api.js', 'ui.css', 'favicon.svg']) assert.ok(files.has(name), `${name} is served`);
  assert.not.ok([...files.keys()].some((name) => name.endsWith('.d.ts') || name.endsWith('.map') || name.endsWith('.tsbuildinfo') || name.endsWith('.json')), 'declarations, maps and build info stay on disk');
  const page = answerUi(files, get('/ui/'));
  assert.is(page.status, 200);
  assert.is(page.headers['Content-Type'], 'text/html; charset=utf-8');
  assert.is(page.headers['Content-Security-Policy'], UI_CONTENT_SECURITY_POLICY);
  assert.is(page.headers['X-Content-Type-Options'], 'nosniff');
  for (const name of files.keys()) if (name.endsWith('.js')) assert.ok(text(page.body).includes(`<link rel="modulepreload" href="${name}">`), `the page preloads ${name}`);
  assert.is(answerUi(files, get('/ui/main.js')).headers['Content-Type'], 'text/javascript; charset=utf-8');
  assert.is(answerUi(files, get('/ui/ui.css')).headers['Content-Type'], 'text/css; charset=utf-8');
  assert.is(answerUi(files, get('/ui/favicon.svg')).headers['Content-Type'], 'image/svg+xml');
});

const made: UiFiles = new Map([
  ['index.html', uiFile('index.html', Buffer.from('<p>page</p>'))],
  ['main.js', uiFile('main.js', Buffer.from('export {};'))],
]);

test('a file is revalidated by its ETag: the same tag is a 304 without a body, another a 200', () => {
  const first = answerUi(made, get('/ui/main.js'));
  assert.is(first.status, 200);
  assert.is(first.headers['Cache-Control'], 'no-cache');
  const etag = first.headers.ETag!;
  assert.match(etag, /^"[A-Za-z0-9_-]{22}"$/);
  const again = answerUi(made, get('/ui/main.js', etag));
  assert.is(again.status, 304);
  assert.is(again.body.length, 0);
  assert.is(again.headers.ETag, etag);
  assert.is(again.headers['Content-Length'], String(first.body.length), 'a 304 states the length of the 200 it stands for');
  assert.is(answerUi(made, get('/ui/main.js', '"other"')).status, 200);
  assert.is(answerUi(made, get('/ui/main.js', `"other", W/${etag}`)).status, 304, 'a weak form of the tag in a list matches');
  assert.ok(etagMatches('*', etag));
  assert.is.not(uiFile('main.js', Buffer.from('export const changed = 1;')).etag, etag, 'another content, another tag');
});

test('/ui redirects to /ui/, other methods are refused, unknown names are 404s that name no file on disk', () => {
  const redirect = answerUi(made, get('/ui'));
  assert.is(redirect.status, 308);
  assert.is(redirect.headers.Location, '/ui/');
  const post = answerUi(made, { method: 'POST', pathname: '/ui/', ifNoneMatch: undefined });
  assert.is(post.status, 405);
  assert.is(post.headers.Allow, 'GET, HEAD');
  assert.is(answerUi(made, { method: 'HEAD', pathname: '/ui/main.js', ifNoneMatch: undefined }).status, 200);
  for (const pathname of ['/ui/../package.json', '/ui/..%2F..%2Fpackage.json', '/ui/%2e%2e/ui-server.js', '/ui/browser/main.js', '/ui//etc/passwd', '/ui/main.js/', '/ui/index.d.ts', '/ui/main.js%00.css']) {
    const answer = answerUi(made, get(pathname));
    assert.is(answer.status, 404, pathname);
    assert.is(answer.headers['Content-Type'], 'text/plain; charset=utf-8');
  }
  assert.ok(isUiPath('/ui') && isUiPath('/ui/x') && !isUiPath('/uix') && !isUiPath('/v1/ui'));
});

test('a UI that was not built is a 503 that says how to build it, and is looked for again at the next request', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'hivemind-ui-'));
  try {
    const server = new UiServer({ compiled: join(directory, 'compiled'), static: join(directory, 'static') });
    const before = await server.answer(get('/ui/'));
    assert.is(before.status, 503);
    assert.match(text(before.body), /npm run build/);
    // Built afterwards: served without a restart.
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(directory, 'compiled'));
    mkdirSync(join(directory, 'static'));
    writeFileSync(join(directory, 'compiled', 'main.js'), 'export {};');
    writeFileSync(join(directory, 'compiled', 'main.d.ts'), 'export {};');
    writeFileSync(join(directory, 'static', 'index.html'), '<!-- modulepreload -->');
    writeFileSync(join(directory, 'static', 'notes.txt'), 'not served');
    const after = await server.answer(get('/ui/'));
    assert.is(after.status, 200);
    assert.is(text(after.body), '<link rel="modulepreload" href="main.js">');
    assert.is((await server.answer(get('/ui/notes.txt'))).status, 404, 'a kind of file the UI does not serve is not read');
    assert.is((await server.answer(get('/ui/main.d.ts'))).status, 404);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test('module preloads go where the page marks them, sorted', () => {
  const page = withModulePreloads(Buffer.from('<head>\n<!-- modulepreload -->\n</head>'), ['b.js', 'a.js']);
  assert.is(text(page), '<head>\n<link rel="modulepreload" href="a.js">\n<link rel="modulepreload" href="b.js">\n</head>');
});

test.run();
