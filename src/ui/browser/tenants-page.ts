/**
 * The tenants: each quota beside what the tenant's apps use of it.
 */
import type { QuotaView, TenantView } from './api-types.js';
import { element } from './dom.js';
import { formatBytes, formatCpu, formatUsage, usageFraction } from './format.js';
import { section, type Page } from './page.js';

const MEASURES: { key: keyof QuotaView; label: string; unit: (value: number) => string }[] = [
  { key: 'cpuMillis', label: 'CPU', unit: formatCpu },
  { key: 'memoryBytes', label: 'memory', unit: formatBytes },
  { key: 'instances', label: 'instances', unit: String },
  { key: 'apps', label: 'apps', unit: String },
  { key: 'volumes', label: 'volumes', unit: String },
  { key: 'storageBytes', label: 'storage', unit: formatBytes },
];

/** The tenants page. */
export const tenantsPage: Page = (context) => {
  const list = element('div', { class: 'cards' });
  context.root.append(element('h1', null, 'Tenants'), list);
  context.live(async () => {
    const tenants = await context.api.read<{ tenants: TenantView[] }>('/v1/tenants');
    list.replaceChildren(...tenants.value.tenants.map(tenantCard));
    return tenants.index;
  });
};

function tenantCard(tenant: TenantView): HTMLElement {
  return section(
    tenant.name,
    element(
      'dl',
      { class: 'usage', 'data-test': `tenant-${tenant.name}` },
      ...MEASURES.flatMap((measure) => {
        const used = tenant.usage[measure.key];
        const limit = tenant.quota[measure.key];
        const fraction = usageFraction(used, limit);
        return [
          element('dt', null, measure.label),
          element(
            'dd',
            null,
            formatUsage(used, limit, measure.unit),
            fraction === undefined ? null : element('meter', { min: 0, max: 1, low: 0.7, high: 0.9, optimum: 0, value: Math.min(1, fraction) }),
          ),
        ];
      }),
    ),
  );
}
