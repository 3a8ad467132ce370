/**
 * The UI's entry: the login, the shell (header, navigation, notices) and
 * the routes (`#/cluster`, `#/apps`, `#/apps/<tenant>/<name>`, `#/tenants`,
 * `#/history`, `#/deploy`). Navigation changes the hash only: no page
 * reloads; each page runs until the next route aborts its signal.
 */
import { ApiClient, ApiRequestError } from './api.js';
import type { StatusView } from './api-types.js';
import { appPage } from './app-page.js';
import { appsPage } from './apps-page.js';
import { clusterPage } from './cluster-page.js';
import { deployPage } from './deploy-page.js';
import { element } from './dom.js';
import { historyPage } from './history-page.js';
import { follow } from './live.js';
import { errorText, type Page, type PageContext } from './page.js';
import { forgetToken, keepToken, sessionToken } from './session.js';
import { tenantsPage } from './tenants-page.js';

/** The pages by the hash's first segment, with their navigation labels (none: not in the navigation). */
const PAGES: ReadonlyMap<string, { page: Page; label?: string }> = new Map([
  ['cluster', { page: clusterPage, label: 'Cluster' }],
  ['apps', { page: appsPage, label: 'Apps' }],
  ['tenants', { page: tenantsPage, label: 'Tenants' }],
  ['history', { page: historyPage, label: 'History' }],
  ['deploy', { page: deployPage, label: 'Deploy' }],
]);

const DEFAULT_PAGE = 'cluster';

const root = document.getElementById('app');
if (root === null) throw new Error('the page has no #app element');
const app: HTMLElement = root;

let leavePage: AbortController | undefined;

function start(): void {
  const token = sessionToken();
  if (token === undefined) showLogin();
  else showShell(token);
}

function showLogin(message?: string): void {
  leavePage?.abort();
  window.removeEventListener('hashchange', onRoute);
  const token = element('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true, 'aria-label': 'API token', 'data-test': 'login-token' });
  const failure = element('p', { class: 'error', role: 'alert', 'data-test': 'login-error' }, message ?? '');
  const submit = element('button', { type: 'submit', class: 'primary', 'data-test': 'login-submit' }, 'Sign in');
  const form = element(
    'form',
    { class: 'login', 'data-test': 'login' },
    element('h1', null, 'Hivemind'),
    element('p', null, 'Sign in with an API token or the cluster token (', element('code', null, 'hivemind token'), ' on a member shows it).'),
    element('label', null, 'Token', token),
    submit,
    failure,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    failure.textContent = '';
    const given = token.value.trim();
    try {
      await new ApiClient(given).read<StatusView>('/v1/status?stale=true');
      keepToken(given);
      showShell(given);
    } catch (error) {
      failure.textContent = error instanceof ApiRequestError && error.status === 401 ? `The node refused this token: ${error.message}` : errorText(error);
      submit.disabled = false;
    }
  });
  app.replaceChildren(element('main', { class: 'login-page' }, form));
  token.focus();
}

let api: ApiClient | undefined;
let pageArea: HTMLElement | undefined;
let notices: HTMLElement | undefined;
let navigation: HTMLElement | undefined;

function showShell(token: string): void {
  api = new ApiClient(token, (error) => {
    forgetToken();
    showLogin(`Signed out: ${error.message}`);
  });
  navigation = element('nav', { class: 'nav', 'aria-label': 'pages' }, ...[...PAGES].filter(([, entry]) => entry.label !== undefined).map(([name, entry]) => element('a', { href: `#/${name}`, 'data-page': name }, entry.label!)));
  const node = element('span', { class: 'node', 'data-test': 'node' });
  const signOut = element('button', { type: 'button', class: 'link', 'data-test': 'sign-out' }, 'Sign out');
  signOut.addEventListener('click', () => {
    forgetToken();
    showLogin();
  });
  notices = element('div', { class: 'notices', 'aria-live': 'polite' });
  pageArea = element('main', { class: 'page' });
  app.replaceChildren(element('header', { class: 'top' }, element('a', { class: 'brand', href: '#/cluster' }, 'Hivemind'), navigation, element('div', { class: 'session' }, node, signOut)), notices, pageArea);
  api.read<StatusView>('/v1/status?stale=true').then(
    (status) => (node.textContent = `${status.value.node} · ${status.value.role}`),
    () => {},
  );
  window.addEventListener('hashchange', onRoute);
  onRoute();
}

function onRoute(): void {
  if (api === undefined || pageArea === undefined || notices === undefined || navigation === undefined) return;
  leavePage?.abort();
  const leave = new AbortController();
  leavePage = leave;
  const segments = location.hash.replace(/^#\/?/, '').split('/').filter((segment) => segment !== '').map(safeDecode);
  const name = segments[0] ?? DEFAULT_PAGE;
  const entry = name === 'apps' && segments.length >= 3 ? { page: appPage } : PAGES.get(name);
  for (const link of navigation.querySelectorAll('a')) {
    link.classList.toggle('current', link.dataset.page === name);
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const area = element('div');
  const liveStatus = element('p', { class: 'live-status', role: 'status' });
  pageArea.replaceChildren(liveStatus, area);
  notices.replaceChildren();
  if (entry === undefined) {
    area.append(element('p', { class: 'error' }, `No page "${name}": `, element('a', { href: `#/${DEFAULT_PAGE}` }, 'go to the cluster')));
    return;
  }
  const client = api;
  const noticeArea = notices;
  const context: PageContext = {
    api: client,
    root: area,
    signal: leave.signal,
    parameters: segments.slice(1),
    live(load) {
      void follow({
        api: client,
        signal: leave.signal,
        load,
        onError(error) {
          liveStatus.textContent = error === undefined ? '' : `Not up to date: ${errorText(error)} (retrying)`;
          liveStatus.classList.toggle('error', error !== undefined);
        },
      });
    },
    notify(message, tone) {
      noticeArea.replaceChildren(element('p', { class: `notice notice-${tone}`, role: tone === 'bad' ? 'alert' : 'status', 'data-test': 'notice' }, message));
    },
  };
  entry.page(context);
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

start();
