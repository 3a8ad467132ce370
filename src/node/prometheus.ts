/**
 * The prom-client classes the agent's metrics are made of, loaded from their
 * own files: `import ... from 'prom-client'` loads the whole package (77
 * modules with the OpenTelemetry API its default metrics require, the
 * push gateway, the summary's t-digest), and most of it serves Node's own
 * metrics, which the API registers at the first scrape
 * (src/api/metrics.ts; `collectDefaultMetrics` below loads the rest then).
 * The classes are prom-client's own (the package's index requires the same
 * files), so a registry, a metric and `instanceof` mean what they do there.
 * Components import the metric classes from here; types may come from
 * 'prom-client' with `import type`.
 */
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const require = createRequire(import.meta.url);

/** prom-client's `Registry`. */
export const Registry = require('prom-client/lib/registry.js') as typeof PromClient.Registry;
/** prom-client's `Counter`. */
export const Counter = require('prom-client/lib/counter.js') as typeof PromClient.Counter;
/** prom-client's `Gauge`. */
export const Gauge = require('prom-client/lib/gauge.js') as typeof PromClient.Gauge;
/** prom-client's `Histogram`. */
export const Histogram = require('prom-client/lib/histogram.js') as typeof PromClient.Histogram;
/** prom-client's `AggregatorRegistry` (the proxy's worker processes' metrics). */
export const AggregatorRegistry = require('prom-client/lib/cluster.js') as typeof PromClient.AggregatorRegistry;

export type Registry = PromClient.Registry;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;
export type AggregatorRegistry<T extends PromClient.RegistryContentType = PromClient.PrometheusContentType> = PromClient.AggregatorRegistry<T>;

/** prom-client's `collectDefaultMetrics`, loading the rest of the package on the first call. */
export function collectDefaultMetrics(config: PromClient.DefaultMetricsCollectorConfiguration<PromClient.RegistryContentType>): void {
  (require('prom-client') as typeof PromClient).collectDefaultMetrics(config);
}
