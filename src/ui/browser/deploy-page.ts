/**
 * Deploy: paste an app file (Compose YAML, as `hivemind deploy -f` sends
 * it) and send it to `POST /v1/deploy`, or check it first with a dry run.
 */
import type { DeployAnswerView } from './api-types.js';
import { ApiRequestError } from './api.js';
import { element } from './dom.js';
import { appLink, errorText, section, type Page } from './page.js';

const EXAMPLE = `services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    deploy:
      replicas: 2
`;

/** The largest file the picker reads: the API's body limit (4 MiB), less room for the JSON around it. */
const APP_FILE_BYTES_MAX = 4 * 1024 * 1024 - 4096;

/** The deploy page. */
export const deployPage: Page = (context) => {
  const fileName = element('input', { type: 'text', name: 'fileName', value: 'app.yaml', required: true, 'data-test': 'deploy-file-name' });
  const tenant = element('input', { type: 'text', name: 'tenant', placeholder: 'from the file, else default', 'data-test': 'deploy-tenant' });
  const content = element('textarea', { name: 'content', rows: 16, spellcheck: 'false', placeholder: EXAMPLE, required: true, 'data-test': 'deploy-content' });
  const picker = element('input', { type: 'file', accept: '.yaml,.yml,.json,text/yaml', 'aria-label': 'read the app file from disk' });
  picker.addEventListener('change', async () => {
    const file = picker.files?.[0];
    if (file === undefined) return;
    if (file.size > APP_FILE_BYTES_MAX) {
      context.notify(`${file.name} is ${file.size} bytes; the API takes at most ${APP_FILE_BYTES_MAX} bytes in one request`, 'bad');
      return;
    }
    content.value = await file.text();
    fileName.value = file.name;
  });
  const outcome = element('div', { 'aria-live': 'polite', 'data-test': 'deploy-outcome' });
  const send = async (dryRun: boolean): Promise<void> => {
    const body = { fileName: fileName.value.trim() || 'app.yaml', content: content.value, ...(tenant.value.trim() === '' ? {} : { tenant: tenant.value.trim() }), ...(dryRun ? { dryRun: true } : {}) };
    outcome.replaceChildren(element('p', { class: 'hint' }, dryRun ? 'checking…' : 'deploying…'));
    try {
      const answer = await context.api.write<DeployAnswerView & { dryRun?: boolean }>('POST', '/v1/deploy', body);
      outcome.replaceChildren(dryRun ? dryRunOutcome(answer) : deployOutcome(answer));
    } catch (error) {
      const field = error instanceof ApiRequestError && error.field !== undefined ? ` (field: ${error.field})` : '';
      outcome.replaceChildren(element('p', { class: 'error', role: 'alert' }, errorText(error), field));
    }
  };
  const form = element(
    'form',
    { class: 'deploy-form', 'data-test': 'deploy-form' },
    element('div', { class: 'form-row' }, element('label', null, 'File name', fileName), element('label', null, 'Tenant', tenant)),
    element('label', null, 'App file (Compose YAML): paste it, or ', picker, content),
    element(
      'div',
      { class: 'actions' },
      element('button', { type: 'submit', class: 'primary', 'data-test': 'deploy-submit' }, 'Deploy'),
      element('button', { type: 'button', 'data-test': 'deploy-dry-run', onclick: () => void send(true) }, 'Dry run'),
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void send(false);
  });
  context.root.append(element('h1', null, 'Deploy'), section('App file', form), outcome);
};

function deployOutcome(answer: DeployAnswerView): HTMLElement {
  return section(
    'Deployed',
    element(
      'ul',
      null,
      ...answer.apps.map((app) =>
        element('li', null, element('a', { href: appLink(app.tenant, app.name) }, `${app.tenant}/${app.name}`), app.unchanged === true ? ': unchanged' : `: version ${app.version}, ${app.replicas} replicas${app.rollout === undefined ? '' : ', rollout started'}`),
      ),
    ),
    ...answer.warnings.map((warning) => element('p', { class: 'warning' }, warning)),
  );
}

function dryRunOutcome(answer: unknown): HTMLElement {
  return section('Dry run', element('pre', { class: 'plan' }, JSON.stringify(answer, null, 2)));
}
