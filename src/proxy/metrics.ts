/**
 * The proxy's Prometheus metrics, per route: requests by status class (and
 * the proxy's own error code when it answered itself), a latency histogram,
 * retries, and each backend's breaker state.
 */
import { Counter, Gauge, Histogram, type Registry } from '../node/prometheus.js';
import type { BreakerState } from './breaker.js';
import type { RequestRecord } from './proxy.js';

/** A status's class label by its hundreds (no string built per request). */
const STATUS_CLASSES: readonly string[] = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

const BREAKER_VALUES: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** The names of the proxy's metrics (workers' metrics are merged under them). */
export const PROXY_METRIC_NAMES = ['hivemind_proxy_requests_total', 'hivemind_proxy_request_duration_seconds', 'hivemind_proxy_retries_total', 'hivemind_proxy_breaker_state'] as const;

export interface ProxyMetrics {
  record(request: RequestRecord): void;
}

/** Registers the metrics on `registry`; `breakers` is read at each scrape. */
export function registerProxyMetrics(registry: Registry, breakers: () => { app: string; instance: string; state: BreakerState }[]): ProxyMetrics {
  const requests = new Counter({
    name: 'hivemind_proxy_requests_total',
    help: 'Requests through this node\'s proxy, by route, app, status class (2xx..5xx) and the proxy\'s own error code ("" when the app answered)',
    labelNames: ['route', 'app', 'class', 'error'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'hivemind_proxy_request_duration_seconds',
    help: 'Time from a request\'s arrival to the end of its response, by route and app',
    labelNames: ['route', 'app'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'hivemind_proxy_retries_total',
    help: 'Attempts beyond the first, by app',
    labelNames: ['app'],
    registers: [registry],
  });
  new Gauge({
    name: 'hivemind_proxy_breaker_state',
    help: 'The circuit breaker of each backend: 0 closed, 1 half-open, 2 open',
    labelNames: ['app', 'instance'],
    registers: [registry],
    // Merged over proxy workers: the worst state any of them holds.
    aggregator: 'max',
    collect() {
      this.reset();
      for (const breaker of breakers()) this.set({ app: breaker.app, instance: breaker.instance }, BREAKER_VALUES[breaker.state]);
    },
  });
  return {
    record(request) {
      const route = request.route ?? '';
      const app = request.app ?? '';
      const hundreds = Math.floor(request.status / 100);
      requests.inc({ route, app, class: STATUS_CLASSES[hundreds] ?? `${hundreds}xx`, error: request.error ?? '' });
      latency.observe({ route, app }, request.durationMs / 1000);
      if (request.attempts > 1) retries.inc({ app }, request.attempts - 1);
    },
  };
}
