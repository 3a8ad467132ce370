// The web UI in a real browser against a real agent: Debian's chromium,
// headless, driven by playwright-core. It refuses a wrong token, signs in,
// deploys a process app from the deploy page, watches it become healthy on
// its page, deploys a canary update and promotes it with the page's button,
// reads the app's logs on the page, aborts the next canary with the page's
// other button, and shows a tenant's token only its tenant. It also checks the files' headers over the real HTTPS port.
//
// HIVEMIND_UI_SCREENSHOTS=1 runs it on three nodes and writes screenshots
// of the main pages at 1280 and 390 px wide to docs/ui/*.png. The first
// paint is measured with the Performance API and printed, never asserted.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually, type TestNode } from '../../agent/test/harness.js';

const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags chromium's outbound attempts fail noisily on a closed network.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOTS = process.env.HIVEMIND_UI_SCREENSHOTS === '1';
const SCREENSHOT_DIR = fileURLToPath(new URL('../../../../docs/ui/', import.meta.url));
/** Waits in the page: generous, the machine is shared. */
const PAGE_WAIT_MS = 60_000;

if (!existsSync(CHROMIUM)) throw new Error(`this test drives Debian's chromium at ${CHROMIUM}: install it (apt-get install chromium)`);

const cluster = new TestCluster(50);
let browser: Browser | undefined;
let node: TestNode;
const started = Date.now();

test.after(async () => {
  await browser?.close().catch(() => {});
  await cluster.cleanup().catch(() => {});
  console.log(`ui-browser: ${((Date.now() - started) / 1000).toFixed(1)} s in all`);
});

/** A process app: an HTTP server on its port (the health check's target) that logs its greeting every second. */
function appFile(greeting: string): string {
  const script = "const http = require('node:http'); http.createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1', () => console.log(process.env.GREETING + ' from ' + process.env.HIVEMIND_INSTANCE)); setInterval(() => console.log(process.env.GREETING + ' tick'), 1000); process.on('SIGTERM', () => process.exit(0));";
  return [
    'services:',
    '  hello:',
    `    command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(script)}]`,
    `    environment: { GREETING: "${greeting}" }`,
    '    ports: ["80"]',
    '    healthcheck: { test: ["TCP", "127.0.0.1:80"], interval: 300ms, retries: 1, start_period: 30s }',
    '    deploy:',
    '      replicas: 2',
    '      update_config: { parallelism: 1, delay: 0s, order: start-first, monitor: 0s }',
    '    x-hivemind:',
    '      strategy: canary',
    '      canary: { instances: 1 }',
    '',
  ].join('\n');
}

/** A small app in tenant acme, deployed through the API: what a tenant's token should see, and nothing else. */
const ACME_APP = ['services:', '  worker:', `    command: [${JSON.stringify(process.execPath)}, "-e", "setInterval(() => {}, 1000); process.on('SIGTERM', () => process.exit(0))"]`, 'x-hivemind: { tenant: acme }', ''].join('\n');

async function newPage(widthPx = 1280): Promise<{ context: BrowserContext; page: Page }> {
  // The node's certificate is signed by the cluster's own CA, which this fresh browser profile does not trust.
  const context = await browser!.newContext({ ignoreHTTPSErrors: true, viewport: { width: widthPx, height: widthPx > 600 ? 900 : 844 } });
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_WAIT_MS);
  return { context, page };
}

function uiUrl(path = ''): string {
  return `https://127.0.0.1:${node.apiPort}/ui/${path}`;
}

/** Waits until the text of `selector` passes `check`; fails with the text last seen. */
async function waitForText(page: Page, selector: string, check: (text: string) => boolean, what: string): Promise<string> {
  let last = '';
  return eventually(what, async () => {
    const found = page.locator(selector).first();
    last = (await found.count()) === 0 ? '(absent)' : await found.innerText();
    return check(last) ? last : undefined;
  }, PAGE_WAIT_MS, 200).catch((error: Error) => {
    throw new Error(`${error.message}; ${selector} last read: ${last.slice(0, 600)}`);
  });
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.locator('[data-test=login-token]').fill(token);
  await page.locator('[data-test=login-submit]').click();
  await page.locator('[data-test=node]').waitFor();
}

/** A screenshot of the whole page; of the window only for pages whose length is a list's (`fullPage: false`), to keep the files small. */
async function screenshot(page: Page, name: string, fullPage = true): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage });
}

test('the UI signs in, deploys, shows health, promotes a canary, reads logs, and keeps a tenant to its tenant', cluster.withLogs(async () => {
  node = await cluster.bootstrap('u1');
  if (SCREENSHOTS) {
    await cluster.join('u2', node);
    await cluster.join('u3', node);
  }
  const acme = await node.request('PUT', '/v1/tenants/acme', { quota: { cpuMillis: 4000, memoryBytes: 8 * 2 ** 30, instances: 10, apps: 5 } });
  assert.is(acme.status, 200, JSON.stringify(acme.body));
  const acmeToken = await node.request('POST', '/v1/tokens', { name: 'acme-deployer', role: 'deployer', tenants: ['acme'] });
  assert.is(acmeToken.status, 200, JSON.stringify(acmeToken.body));
  const acmeDeployed = await node.request('POST', '/v1/deploy', { fileName: 'worker.yaml', content: ACME_APP });
  assert.is(acmeDeployed.status, 200, JSON.stringify(acmeDeployed.body));

  // The files, over the node's HTTPS port: types, validators, no way out of the UI's own files.
  const index = await node.request('GET', '/ui/', undefined, { token: null });
  assert.is(index.status, 200);
  assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(String(index.body), /<link rel="modulepreload" href="main.js">/);
  const script = await node.request('GET', '/ui/main.js', undefined, { token: null });
  assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
  const etag = script.headers.get('etag') ?? '';
  assert.is((await node.request('GET', '/ui/main.js', undefined, { token: null, headers: { 'if-none-match': etag } })).status, 304);
  assert.is((await node.request('GET', '/ui/..%2Fui-server.js', undefined, { token: null })).status, 404);
  assert.is((await node.request('GET', '/ui/api-types.d.ts', undefined, { token: null })).status, 404);
  assert.is((await node.request('GET', '/v1/apps', undefined, { token: null })).status, 401, 'the data stays behind the token');

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const { page } = await newPage();
  const browserErrors: string[] = [];
  page.on('pageerror', (error) => browserErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of 40[13]/.test(message.text())) browserErrors.push(message.text());
  });

  await page.goto(uiUrl());
  const firstPaintMs = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1);
  await screenshot(page, 'login-1280');

  // A wrong token is refused with the node's reason, and nothing else is shown.
  await page.locator('[data-test=login-token]').fill('not-the-token');
  await page.locator('[data-test=login-submit]').click();
  await waitForText(page, '[data-test=login-error]', (text) => text.includes('refused'), 'the wrong token to be refused');
  assert.is(await page.locator('[data-test=node]').count(), 0, 'no page behind the login');

  await signIn(page, cluster.token);
  await waitForText(page, '[data-test=nodes]', (text) => text.includes('u1') && text.includes('leader'), 'the cluster page to list the node as leader');
  // The serving node's election log: the term u1 won, on the cluster page.
  await waitForText(page, '[data-test=elections]', (text) => text.includes('u1'), 'the recent elections to name u1');
  // Signed in (the token is the tab's): a reload paints the cluster page from the files just revalidated.
  await page.reload();
  await page.locator('[data-test=nodes]').waitFor();
  const reload = await page.evaluate(() => ({
    firstPaintMs: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1,
    nodesShownMs: performance.now(),
  }));
  console.log(
    `ui-browser (${cluster.running().length} node(s)): first contentful paint ${firstPaintMs.toFixed(0)} ms on the first visit (login page), ` +
      `${reload.firstPaintMs.toFixed(0)} ms on a reload, nodes table shown ${reload.nodesShownMs.toFixed(0)} ms after the reload began`,
  );

  // Deploy version 1 from the deploy page.
  await page.locator('nav a[data-page=deploy]').click();
  await page.locator('[data-test=deploy-file-name]').fill('hello.yaml');
  await page.locator('[data-test=deploy-content]').fill(appFile('hello v1'));
  await page.locator('[data-test=deploy-submit]').click();
  await waitForText(page, '[data-test=deploy-outcome]', (text) => text.includes('default/hello: version 1'), 'the deploy to be answered');
  await page.locator('[data-test=deploy-outcome] a', { hasText: 'default/hello' }).click();
  await waitForText(page, '[data-test=instances]', (text) => (text.match(/\bhealthy\b/g) ?? []).length === 2, 'both instances to show healthy');

  // Version 2 as a canary: one new instance beside the old ones, then promote from the app's page.
  await page.locator('nav a[data-page=deploy]').click();
  await page.locator('[data-test=deploy-file-name]').fill('hello.yaml');
  await page.locator('[data-test=deploy-content]').fill(appFile('hello v2'));
  await page.locator('[data-test=deploy-submit]').click();
  await waitForText(page, '[data-test=deploy-outcome]', (text) => text.includes('default/hello: version 2'), 'the update to be answered');
  await page.locator('[data-test=deploy-outcome] a', { hasText: 'default/hello' }).click();
  await waitForText(page, '[data-test=rollout]', (text) => text.includes('awaiting-promotion'), 'the canary to await promotion');
  await waitForText(page, '[data-test=logs]', (text) => text.includes('hello v2'), 'the canary\'s log lines on the page');
  await screenshot(page, 'app-canary-1280');
  await page.locator('[data-test=promote]').click();
  await waitForText(page, '[data-test=notice]', (text) => text.includes('promoted version 2'), 'the promotion to be acknowledged');
  await waitForText(page, '[data-test=rollout]', (text) => text.includes('succeeded'), 'the rollout to succeed');
  await waitForText(page, '[data-test=instances]', (text) => (text.match(/\bv2\b/g) ?? []).length >= 2 && !/\bv1\b/.test(text), 'only version 2 to remain');
  await waitForText(page, '[data-test=logs]', (text) => text.includes('hello v2 tick'), 'the new version\'s logs, as they are written');
  // The page's word is the state's: the API agrees.
  const app = await node.request('GET', '/v1/apps/default/hello');
  assert.is(app.body.version, 2);
  assert.is(app.body.rollout.state, 'succeeded');

  // A third version's canary, deployed through the API, appears on the open page by itself; Abort removes it.
  const third = await node.request('POST', '/v1/deploy', { fileName: 'hello.yaml', content: appFile('hello v3') });
  assert.is(third.status, 200, JSON.stringify(third.body));
  await waitForText(page, '[data-test=rollout]', (text) => text.includes('awaiting-promotion') && text.includes('v3'), 'the new canary on the open page');
  await page.locator('[data-test=abort]').click();
  await waitForText(page, '[data-test=notice]', (text) => text.includes('aborted the rollout to version 3'), 'the abort to be acknowledged');
  await waitForText(page, '[data-test=instances]', (text) => !/\bv3\b/.test(text), 'the canary to be gone');
  const aborted = await node.request('GET', '/v1/apps/default/hello');
  assert.is(aborted.body.version, 2, JSON.stringify(aborted.body.rollout));

  // History, filtered.
  await page.locator('nav a[data-page=history]').click();
  await page.locator('[data-test=history-filter]').fill('app.promote');
  await waitForText(page, '[data-test=history]', (text) => text.includes('default/hello') && !text.includes('acme/worker'), 'the history filtered to the promotion');
  await page.locator('[data-test=history-filter]').fill('');
  await page.locator('[data-test=history-tenant]').fill('acme');
  await waitForText(page, '[data-test=history]', (text) => text.includes('acme/worker') && text.includes('placed acme.worker') && !text.includes('default/hello'), 'the history filtered to tenant acme');

  // The tenants with their usage; the cluster page's graphs.
  await page.locator('nav a[data-page=tenants]').click();
  await waitForText(page, '[data-test=tenant-acme]', (text) => text.includes('of 5'), 'acme\'s apps against its quota');
  await page.locator('nav a[data-page=cluster]').click();
  await waitForText(page, '.charts', (text) => text.includes('entries/s'), 'the commit rate graph');
  await page.evaluate('location.hash = "#/__proto__"');
  await waitForText(page, 'main', (text) => text.includes('No page "__proto__"'), 'a hash that names no page to say so');
  assert.equal(browserErrors, [], 'no script error in the page');

  // A tenant's token: its tenant's apps only.
  const { context: tenantContext, page: tenantPage } = await newPage();
  await tenantPage.goto(uiUrl('#/apps'));
  // A first visit again, with nothing cached (a new context), the browser itself already started.
  const coldPaintMs = await tenantPage.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1);
  console.log(`ui-browser (${cluster.running().length} node(s)): first contentful paint ${coldPaintMs.toFixed(0)} ms on a first visit from a fresh context of the running browser`);
  await signIn(tenantPage, acmeToken.body.token);
  await waitForText(tenantPage, '[data-test=apps]', (text) => text.includes('worker'), 'acme\'s app on its token\'s apps page');
  assert.not.match(await tenantPage.locator('[data-test=apps]').innerText(), /hello/, 'another tenant\'s app is not shown');
  await tenantPage.locator('nav a[data-page=cluster]').click();
  await waitForText(tenantPage, '.charts', (text) => text.includes('cluster-wide'), 'the graphs to say they need a cluster-wide token');
  await tenantContext.close();

  if (SCREENSHOTS) await takeScreenshots();
}));

/** The main pages at a desktop's and a phone's width. */
async function takeScreenshots(): Promise<void> {
  for (const widthPx of [1280, 390]) {
    const { context, page } = await newPage(widthPx);
    await page.goto(uiUrl());
    await signIn(page, cluster.token);
    const shots: [string, string, string][] = [
      ['cluster', '#/cluster', '[data-test=nodes]'],
      ['apps', '#/apps', '[data-test=apps]'],
      ['app', '#/apps/default/hello', '[data-test=instances]'],
      ['tenants', '#/tenants', '[data-test=tenant-acme]'],
      ['history', '#/history', '[data-test=history]'],
      ['deploy', '#/deploy', '[data-test=deploy-form]'],
    ];
    for (const [name, hash, ready] of shots) {
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await page.locator(ready).first().waitFor();
      // The graphs need a few samples to draw a line.
      if (name === 'cluster') await waitForText(page, '.charts', (text) => text.includes('entries/s'), 'the graphs').then(() => page.waitForTimeout(6000));
      if (name === 'app') await waitForText(page, '[data-test=logs]', (text) => text.includes('tick'), 'the logs');
      await screenshot(page, `${name}-${widthPx}`, name !== 'history');
    }
    await context.close();
  }
}

test.run();
